//! `Cond`: Go's `sync.Cond`, with Go's ticket-based notify list.
//!
//! `wait` takes a ticket before unlocking the mutex, then waits for that ticket: a `signal`
//! between the unlock and the park is not lost (it advances `notify` past the ticket, and
//! the waiter then does not park). `signal` wakes the oldest ticket; `broadcast` all of them.

use std::collections::VecDeque;

use parking_lot::Mutex as PlMutex;

use super::mutex::MutexGuard;
use crate::sched::park::{block_current, Waiter};
use crate::sched::WaitReason;

/// A condition variable for goroutines (Go's `sync.Cond`). `wait` parks the goroutine.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// gort::run(|| {
///     let state = Arc::new((gort::Mutex::new(false), gort::Cond::new()));
///     let s = state.clone();
///     gort::go!(move || {
///         *s.0.lock() = true;
///         s.1.signal();
///     });
///     let (m, c) = &*state;
///     let mut ready = m.lock();
///     while !*ready {
///         ready = c.wait(ready);
///     }
/// });
/// ```
#[derive(Default)]
pub struct Cond {
    list: PlMutex<NotifyList>,
}

#[derive(Default)]
struct NotifyList {
    /// The next ticket to hand out.
    wait: u64,
    /// The next ticket to notify.
    notify: u64,
    waiters: VecDeque<(u64, Waiter)>,
}

impl Cond {
    /// A condition variable. Go's `sync.NewCond(&mu)` ties it to a mutex; here the mutex's
    /// guard is passed to each [`wait`](Cond::wait).
    ///
    /// ```
    /// let (m, c) = (gort::Mutex::new(0), gort::Cond::new());
    /// *m.lock() += 1;
    /// c.broadcast(); // nobody waits: nothing happens
    /// assert_eq!(*m.lock(), 1);
    /// ```
    pub fn new() -> Cond {
        Cond::default()
    }

    /// Unlocks the guard's mutex, waits for a `signal` or `broadcast`, locks it again.
    /// Check the condition in a loop, as in Go: a wake-up does not promise it holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let q = Arc::new((gort::Mutex::new(Vec::new()), gort::Cond::new()));
    ///     let q2 = q.clone();
    ///     gort::go!(move || {
    ///         q2.0.lock().push("job");
    ///         q2.1.signal();
    ///     });
    ///     let (m, c) = &*q;
    ///     let mut jobs = m.lock();
    ///     while jobs.is_empty() {
    ///         jobs = c.wait(jobs); // Go: c.Wait()
    ///     }
    ///     assert_eq!(jobs.pop(), Some("job"));
    /// });
    /// ```
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let ticket = {
            let mut l = self.list.lock();
            l.wait += 1;
            l.wait - 1
        };
        let m = guard.mutex();
        drop(guard);
        let mut l = self.list.lock();
        if ticket >= l.notify {
            block_current(WaitReason::CondWait, move |w| {
                l.waiters.push_back((ticket, w));
                drop(l);
            });
        } else {
            drop(l);
        }
        m.lock()
    }

    /// Wakes the longest-waiting goroutine, if any.
    ///
    /// ```
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let tokens = Arc::new((gort::Mutex::new(0), gort::Cond::new()));
    ///     let wg = gort::WaitGroup::new();
    ///     for _ in 0..2 {
    ///         let t = tokens.clone();
    ///         wg.go(move || {
    ///             let mut n = t.0.lock();
    ///             while *n == 0 {
    ///                 n = t.1.wait(n);
    ///             }
    ///             *n -= 1;
    ///         });
    ///     }
    ///     for _ in 0..2 {
    ///         *tokens.0.lock() += 1;
    ///         tokens.1.signal(); // one token, one waiter woken (Go: c.Signal())
    ///     }
    ///     wg.wait();
    ///     assert_eq!(*tokens.0.lock(), 0);
    /// });
    /// ```
    pub fn signal(&self) {
        let mut l = self.list.lock();
        if l.notify == l.wait {
            return;
        }
        let t = l.notify;
        l.notify += 1;
        let w = l
            .waiters
            .iter()
            .position(|(tk, _)| *tk == t)
            .and_then(|i| l.waiters.remove(i));
        drop(l);
        if let Some((_, w)) = w {
            w.wake();
        }
    }

    /// Wakes every waiting goroutine.
    ///
    /// ```
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let gate = Arc::new((gort::Mutex::new(false), gort::Cond::new()));
    ///     let wg = gort::WaitGroup::new();
    ///     for _ in 0..3 {
    ///         let g = gate.clone();
    ///         wg.go(move || {
    ///             let mut open = g.0.lock();
    ///             while !*open {
    ///                 open = g.1.wait(open);
    ///             }
    ///         });
    ///     }
    ///     *gate.0.lock() = true;
    ///     gate.1.broadcast(); // all three go through (Go: c.Broadcast())
    ///     wg.wait();
    ///     assert!(*gate.0.lock());
    /// });
    /// ```
    pub fn broadcast(&self) {
        let mut l = self.list.lock();
        l.notify = l.wait;
        let all: Vec<_> = l.waiters.drain(..).collect();
        drop(l);
        for (_, w) in all {
            w.wake();
        }
    }
}

impl std::fmt::Debug for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cond { .. }")
    }
}
