//! Go's `golang.org/x/sync/semaphore`: a weighted semaphore whose waiters are served in
//! arrival order.
//!
//! ```
//! let sem = gort::semaphore::Weighted::new(10); // Go: semaphore.NewWeighted(10)
//! assert!(sem.try_acquire(7));
//! assert!(!sem.try_acquire(4)); // only 3 are left
//! sem.release(7);
//! assert!(sem.try_acquire(10));
//! ```
//!
//! # Invariants
//!
//! - `cur <= size` always; `cur` is the weight held by acquirers that returned `Ok`.
//! - Fairness (Go's): a waiter is granted only from the front of the queue; while the front
//!   waiter does not fit, nobody behind it is granted, and a new `acquire` that would fit
//!   still queues behind existing waiters (no barging, so a large request is not starved by
//!   small ones).
//! - A grant is made under the lock (`cur += n`, then the waiter's `ready` gets its value)
//!   and the waiter leaves the queue in the same step; a waiter whose context ends looks at
//!   `ready` under the lock: granted already, it keeps the weight and returns `Ok` (Go's
//!   "pretend we didn't notice the cancellation"); otherwise it leaves the queue, and if it was
//!   the front, the ones behind it may now fit.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::chan::Chan;
use crate::context::{self, Context};

/// A weighted semaphore (Go's `semaphore.Weighted`).
///
/// # Example: at most 3 units of work at once
///
/// ```
/// use std::sync::Arc;
/// use gort::semaphore::Weighted;
/// gort::run(|| {
///     let sem = Arc::new(Weighted::new(3));
///     let ctx = gort::context::background();
///     let wg = gort::WaitGroup::new();
///     for job in 0..10u64 {
///         sem.acquire(&ctx, 1).unwrap(); // blocks while 3 run
///         let sem = sem.clone();
///         wg.go(move || {
///             let _ = job * 2; // the work
///             sem.release(1);
///         });
///     }
///     wg.wait();
///     assert!(sem.try_acquire(3));
/// });
/// ```
pub struct Weighted {
    size: i64,
    state: Mutex<State>,
}

struct State {
    cur: i64,
    next_id: u64,
    waiters: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    n: i64,
    ready: Chan<()>,
}

impl Weighted {
    /// A semaphore with `n` units (Go's `NewWeighted`).
    ///
    /// ```
    /// let sem = gort::semaphore::Weighted::new(4); // Go: semaphore.NewWeighted(4)
    /// assert!(sem.try_acquire(4));
    /// assert!(!sem.try_acquire(1));
    /// ```
    pub fn new(n: u64) -> Weighted {
        Weighted {
            size: n as i64,
            state: Mutex::new(State {
                cur: 0,
                next_id: 0,
                waiters: VecDeque::new(),
            }),
        }
    }

    /// Takes `n` units, waiting behind earlier waiters until they are free or `ctx` is done
    /// (then its error, and nothing is taken). A context that is done already fails the call
    /// even when the units are free, as in current x/sync: its cancellation happened before
    /// the acquisition. `n` larger than the semaphore waits for `ctx` alone, as in Go. Parks a
    /// goroutine; blocks a plain thread.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gort::{context, semaphore::Weighted};
    /// gort::run(|| {
    ///     let sem = Weighted::new(1);
    ///     sem.acquire(&context::background(), 1).unwrap();
    ///     let (ctx, _c) = context::with_timeout(&context::background(), Duration::from_millis(5));
    ///     assert_eq!(sem.acquire(&ctx, 1), Err(context::Error::DeadlineExceeded));
    /// });
    /// ```
    #[track_caller]
    pub fn acquire(&self, ctx: &Context, n: u64) -> Result<(), context::Error> {
        let n = n as i64;
        if let Some(e) = ctx.err() {
            return Err(e);
        }
        let ready = {
            let mut st = self.state.lock();
            if self.size - st.cur >= n && st.waiters.is_empty() {
                st.cur += n;
                return Ok(());
            }
            if n > self.size {
                drop(st);
                // Can never be satisfied: wait for the context only.
                let _ = ctx.done().recv();
                return Err(ctx.err().unwrap_or(context::Error::Canceled));
            }
            let id = st.next_id;
            st.next_id += 1;
            let ready = Chan::new(1);
            st.waiters.push_back(Waiter {
                id,
                n,
                ready: ready.clone(),
            });
            (id, ready)
        };
        let (id, ready) = ready;
        let done = ctx.done();
        crate::select! {
            recv(ready) -> _ => Ok(()),
            recv(done) -> _ => {
                let mut st = self.state.lock();
                if ready.try_recv().is_ok() {
                    // Granted while the context ended: keep it (Go does the same).
                    return Ok(());
                }
                let front = st.waiters.front().is_some_and(|w| w.id == id);
                st.waiters.retain(|w| w.id != id);
                if front && self.size > st.cur {
                    self.notify(&mut st);
                }
                Err(ctx.err().unwrap_or(context::Error::Canceled))
            },
        }
    }

    /// Takes `n` units if they are free now and nobody waits (Go's `TryAcquire`).
    ///
    /// ```
    /// let sem = gort::semaphore::Weighted::new(2);
    /// assert!(sem.try_acquire(2));
    /// assert!(!sem.try_acquire(1));
    /// sem.release(2);
    /// ```
    pub fn try_acquire(&self, n: u64) -> bool {
        let n = n as i64;
        let mut st = self.state.lock();
        let ok = self.size - st.cur >= n && st.waiters.is_empty();
        if ok {
            st.cur += n;
        }
        ok
    }

    /// Gives back `n` units and grants waiters from the front while they fit (Go's
    /// `Release`).
    ///
    /// # Panics
    /// `semaphore: released more than held`, as in Go.
    ///
    /// ```
    /// use gort::{context, semaphore::Weighted};
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let sem = Arc::new(Weighted::new(2));
    ///     sem.acquire(&context::background(), 2).unwrap();
    ///     let s = sem.clone();
    ///     let waiter = gort::spawn(move || s.acquire(&context::background(), 1));
    ///     sem.release(2); // grants the waiter
    ///     assert_eq!(waiter.join(), Ok(()));
    ///     assert!(sem.try_acquire(1) && !sem.try_acquire(1));
    /// });
    /// ```
    #[track_caller]
    pub fn release(&self, n: u64) {
        let mut st = self.state.lock();
        st.cur -= n as i64;
        if st.cur < 0 {
            drop(st);
            panic!("semaphore: released more than held");
        }
        self.notify(&mut st);
    }

    /// Grants waiters from the front of the queue while the front one fits.
    fn notify(&self, st: &mut State) {
        while let Some(w) = st.waiters.front() {
            if self.size - st.cur < w.n {
                // Fairness: nobody behind a front waiter that does not fit.
                break;
            }
            st.cur += w.n;
            let w = st.waiters.pop_front().expect("the front exists");
            let _ = w.ready.try_send(());
        }
    }
}
