//! A counting semaphore with a FIFO wait queue (Go's `runtime/sema.go`, simplified).
//!
//! Invariants (protected by `state`):
//! - `permits > 0` implies `waiters` is empty: `release` hands its permit straight to the
//!   oldest waiter instead of counting it, so a permit is never stranded next to a sleeper.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::sched::park::{block_current, Waiter};
use crate::sched::WaitReason;

pub(crate) struct Sema {
    state: Mutex<SemaState>,
}

struct SemaState {
    permits: u64,
    waiters: VecDeque<Waiter>,
}

impl Sema {
    pub(crate) const fn new() -> Sema {
        Sema {
            state: Mutex::new(SemaState {
                permits: 0,
                waiters: VecDeque::new(),
            }),
        }
    }

    /// Takes a permit, blocking (parking the goroutine) until one is released to us.
    #[track_caller]
    pub(crate) fn acquire(&self, reason: WaitReason) {
        self.acquire_at(reason, false)
    }

    /// As `acquire`; `lifo` queues at the front (Go's `queueLifo`, for a mutex waiter that
    /// already waited once).
    #[track_caller]
    pub(crate) fn acquire_at(&self, reason: WaitReason, lifo: bool) {
        let mut st = self.state.lock();
        if st.permits > 0 {
            st.permits -= 1;
            return;
        }
        block_current(reason, move |w| {
            if lifo {
                st.waiters.push_front(w);
            } else {
                st.waiters.push_back(w);
            }
            drop(st);
        });
    }

    /// Releases one permit: to the oldest waiter if there is one.
    pub(crate) fn release(&self) {
        let mut st = self.state.lock();
        match st.waiters.pop_front() {
            Some(w) => {
                drop(st);
                w.wake();
            }
            None => st.permits += 1,
        }
    }
}
