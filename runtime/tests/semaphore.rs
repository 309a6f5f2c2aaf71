//! `gort::semaphore::Weighted` through the public API: waiters are served in arrival order (a
//! large request is not starved by small ones that arrive later), a cancelled front waiter
//! lets the ones behind it in, and releasing more than held is Go's panic.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::context::{self, Error};
use gort::semaphore::Weighted;
use gort::Chan;

/// Waits (bounded) until someone waits on `sem`: `try_acquire(0)` fits but is refused while
/// the queue is not empty.
fn until_queued(sem: &Weighted) {
    let t = Instant::now();
    while sem.try_acquire(0) {
        assert!(t.elapsed() < Duration::from_secs(5), "nobody queued");
        gort::time::sleep(Duration::from_millis(1));
    }
}

rt_test! {
    /// A waits for all 3 units; B, arriving after A, wants 1: freeing 1 unit must not let B
    /// pass A. Once A got its 3 and gave them back, B gets its unit.
    fn waiters_are_served_in_arrival_order() {
        let sem = Arc::new(Weighted::new(3));
        let bg = context::background();
        sem.acquire(&bg, 3).unwrap();
        let order: Chan<&str> = Chan::new(4);
        let (s, o, c) = (sem.clone(), order.clone(), bg.clone());
        gort::go!(move || {
            s.acquire(&c, 3).unwrap();
            o.send("A");
            s.release(3);
        });
        until_queued(&sem);
        let b_got = Arc::new(AtomicBool::new(false));
        let (s, o, c, got) = (sem.clone(), order.clone(), bg.clone(), b_got.clone());
        gort::go!(move || {
            s.acquire(&c, 1).unwrap();
            got.store(true, SeqCst);
            o.send("B");
            s.release(1);
        });
        gort::time::sleep(Duration::from_millis(5));
        sem.release(1); // one unit free: B would fit, but A is first
        gort::time::sleep(Duration::from_millis(20));
        assert!(!b_got.load(SeqCst), "B passed A");
        assert!(!sem.try_acquire(1), "a new comer does not barge either");
        sem.release(2);
        assert_eq!(order.recv(), Some("A"));
        assert_eq!(order.recv(), Some("B"));
        let t = Instant::now();
        while !sem.try_acquire(3) {
            assert!(t.elapsed() < Duration::from_secs(5));
            gort::yield_now();
        }
    }
}

rt_test! {
    /// The front waiter's context ends: it gets the context's error and nothing, and the
    /// waiter behind it, which fits, is granted at once.
    fn a_cancelled_front_waiter_lets_the_next_in() {
        let sem = Arc::new(Weighted::new(2));
        let bg = context::background();
        sem.acquire(&bg, 2).unwrap();
        let (ctx_a, cancel_a) = context::with_cancel(&bg);
        let res: Chan<(char, Result<(), Error>)> = Chan::new(2);
        let (s, r) = (sem.clone(), res.clone());
        gort::go!(move || r.send(('A', s.acquire(&ctx_a, 2))));
        until_queued(&sem);
        let (s, r, c) = (sem.clone(), res.clone(), bg.clone());
        gort::go!(move || r.send(('B', s.acquire(&c, 1))));
        gort::time::sleep(Duration::from_millis(5));
        sem.release(1); // B fits, A (front) does not
        cancel_a.cancel();
        let mut got = vec![res.recv().unwrap(), res.recv().unwrap()];
        got.sort_by_key(|g| g.0);
        assert_eq!(got, vec![('A', Err(Error::Canceled)), ('B', Ok(()))]);
        // B holds 1, this holds 1: the semaphore is full.
        assert!(!sem.try_acquire(1));
        sem.release(1);
        assert!(sem.try_acquire(1));
    }
}

/// Go's panic text, and a request larger than the semaphore waits for its context only.
#[gort::test(procs = 2)]
fn releasing_more_than_held_panics_and_oversized_requests_wait_for_the_context() {
    let sem = Weighted::new(1);
    let (ctx, _c) = context::with_timeout(&context::background(), Duration::from_millis(10));
    assert_eq!(sem.acquire(&ctx, 2), Err(Error::DeadlineExceeded));
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sem.release(1)));
    let payload = p.expect_err("released more than held");
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .or_else(|| payload.downcast_ref::<gort::Panic>().map(|p| p.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("semaphore: released more than held"),
        "{msg:?}"
    );
}

/// Current x/sync: a context that is done before the call fails it, even with the units free
/// (its cancellation happened before the acquisition), and nothing is taken.
#[gort::test(procs = 1)]
fn a_done_context_fails_acquire_even_when_units_are_free() {
    let sem = Weighted::new(3);
    let (ctx, cancel) = context::with_cancel(&context::background());
    cancel.cancel();
    assert_eq!(sem.acquire(&ctx, 1), Err(Error::Canceled));
    assert!(sem.try_acquire(3), "the failed call took nothing");
    sem.release(3);
}
