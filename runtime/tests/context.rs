//! `gort::context` through the public API: cancellation reaches goroutines parked in
//! `select!`, propagates down the tree and not up, deadlines fire and inherit, values are
//! found by key, and cancelled contexts leave no timers or registrations behind.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use gort::context::{self, Error};
use gort::{Chan, WaitGroup};

rt_test! {
    /// Go's pipeline shape: workers block in select! on their work and ctx.done(); one cancel
    /// stops them all, and every one sees Canceled.
    fn cancel_reaches_goroutines_parked_in_select() {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let work: Chan<u32> = Chan::new(0);
        let stopped: Chan<Option<Error>> = Chan::new(16);
        for _ in 0..16 {
            let (ctx, work, stopped) = (ctx.clone(), work.clone(), stopped.clone());
            gort::go!(move || loop {
                gort::select! {
                    recv(ctx.done()) -> _ => {
                        stopped.send(ctx.err());
                        return;
                    },
                    recv(work) -> _ => {},
                }
            });
        }
        for i in 0..100 {
            work.send(i);
        }
        cancel.cancel();
        cancel.cancel(); // a second call does nothing
        for _ in 0..16 {
            assert_eq!(stopped.recv().unwrap(), Some(Error::Canceled));
        }
    }
}

rt_test! {
    /// Cancelling a parent cancels the whole subtree (value nodes in between included);
    /// cancelling a child leaves the parent and siblings alone.
    fn cancellation_propagates_down_not_up() {
        let (root, cancel_root) = context::with_cancel(&context::background());
        let (a, cancel_a) = context::with_cancel(&root);
        let (b, _cancel_b) = context::with_cancel(&root);
        #[derive(PartialEq)]
        struct K;
        let bv = context::with_value(&b, K, 7u32);
        let (b1, _cancel_b1) = context::with_cancel(&bv);
        cancel_a.cancel();
        assert_eq!(a.err(), Some(Error::Canceled));
        assert_eq!(root.err(), None);
        assert_eq!(b.err(), None);
        assert!(b1.done().try_recv().is_err());
        cancel_root.cancel();
        for c in [&root, &b, &bv, &b1] {
            assert_eq!(c.err(), Some(Error::Canceled));
            assert_eq!(c.done().recv(), None);
        }
        // A child of a cancelled context is born cancelled.
        let (late, _c) = context::with_cancel(&b1);
        assert_eq!(late.err(), Some(Error::Canceled));
        assert_eq!(bv.value::<K, u32>(&K).as_deref(), Some(&7));
    }
}

rt_test! {
    /// Deadlines: the earlier of a child's and its parent's counts; expiry is
    /// DeadlineExceeded down the tree; an explicit cancel first is Canceled.
    fn deadlines_fire_inherit_and_lose_to_an_earlier_cancel() {
        let t = Instant::now();
        let (short, _c1) = context::with_timeout(&context::background(), Duration::from_millis(20));
        let (longer, _c2) = context::with_timeout(&short, Duration::from_secs(60));
        assert_eq!(longer.deadline(), short.deadline(), "the parent's earlier deadline wins");
        let (child, _c3) = context::with_cancel(&longer);
        gort::select! {
            recv(child.done()) -> _ => {},
            recv(gort::time::after(Duration::from_secs(10))) -> _ => panic!("the deadline never fired"),
        }
        assert!(t.elapsed() >= Duration::from_millis(20));
        for c in [&short, &longer, &child] {
            assert_eq!(c.err(), Some(Error::DeadlineExceeded));
        }
        let (ctx, cancel) = context::with_timeout(&context::background(), Duration::from_millis(30));
        cancel.cancel();
        gort::time::sleep(Duration::from_millis(60));
        assert_eq!(ctx.err(), Some(Error::Canceled));
        // A deadline already past: done at once.
        let (past, _c) = context::with_deadline(&context::background(), Instant::now());
        assert_eq!(past.err(), Some(Error::DeadlineExceeded));
    }
}

rt_test! {
    /// Values: the nearest wins, keys compare by type and value, a wrong value type is None.
    fn values_are_found_by_key_type_and_value() {
        #[derive(PartialEq)]
        struct User;
        #[derive(PartialEq)]
        struct Slot(u8);
        let base = context::background();
        let a = context::with_value(&base, User, "alice");
        let b = context::with_value(&a, Slot(1), 10u64);
        let c = context::with_value(&b, User, "bob");
        let (d, _cancel) = context::with_cancel(&c);
        assert_eq!(d.value::<_, &str>(&User).as_deref(), Some(&"bob"));
        assert_eq!(b.value::<_, &str>(&User).as_deref(), Some(&"alice"));
        assert_eq!(d.value::<_, u64>(&Slot(1)).as_deref(), Some(&10));
        assert!(d.value::<_, u64>(&Slot(2)).is_none());
        assert!(d.value::<_, u32>(&Slot(1)).is_none(), "stored as u64");
        assert!(base.value::<_, &str>(&User).is_none());
        assert!(base.done().try_recv().is_err(), "background is never done");
    }
}

/// Many short-lived timeouts under one long-lived parent, each cancelled at once: no
/// goroutine is left behind, and the parent's list of children does not grow.
#[gort::test(procs = 2)]
fn cancelled_contexts_leave_nothing_behind() {
    let (root, cancel_root) = context::with_cancel(&context::background());
    let before = gort::num_goroutine();
    let wg = WaitGroup::new();
    for _ in 0..1000 {
        let root = root.clone();
        wg.go(move || {
            let (ctx, cancel) = context::with_timeout(&root, Duration::from_secs(3600));
            assert_eq!(ctx.err(), None);
            cancel.cancel();
        });
    }
    wg.wait();
    gort::time::sleep(Duration::from_millis(20));
    assert_eq!(gort::num_goroutine(), before);
    // Still works afterwards, and a cancel reaches a child made after the churn.
    let (c, _k) = context::with_cancel(&root);
    cancel_root.cancel();
    assert_eq!(c.err(), Some(Error::Canceled));
    assert_eq!(
        format!("{}", Error::DeadlineExceeded),
        "context deadline exceeded"
    );
}
