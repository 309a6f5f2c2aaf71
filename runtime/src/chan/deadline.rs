//! The deadline of `send_timeout` / `recv_timeout`: a channel that gets one value when the
//! time is up, a timer client (`TimerFunc`) on the runtime's heaps. What `time::after` is, without the
//! `time` module (which sits above `chan`: its timers send on channels), and with one thing
//! more: an operation that ends first makes the heap entry garbage at once instead of leaving
//! it to fire.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Chan;
use crate::sched::timers::{self, Fire, Target, TimerFunc};
use crate::sched::{self, Shared};

/// An armed deadline; `chan()` is ready once it passed. Dropping it disarms it.
pub(super) struct Deadline {
    timer: Arc<Timeout>,
    shared: Arc<Shared>,
    /// The P whose heap holds the entry.
    p: usize,
}

/// The timer's client: sends once, unless the operation ended first.
struct Timeout {
    ch: Chan<()>,
    /// The operation is over (its heap entry is garbage).
    done: AtomicBool,
}

impl TimerFunc for Timeout {
    fn is_armed(&self, _: u64) -> bool {
        !self.done.load(Ordering::Acquire)
    }

    fn fire(&self, _: &Arc<Shared>, _: u64, _: &Target) {
        // The entry has left the heap: the operation's `Drop` need not tell it. (Whichever of
        // the two sets `done` first acts; a `Drop` that wins while this entry is being fired
        // over-counts the heap's garbage by one, which `timers.rs` allows.)
        if !self.done.swap(true, Ordering::AcqRel) {
            // Buffer 1, one send: never blocks.
            let _ = self.ch.try_send(());
        }
    }

    /// The runtime shuts down: no timer of it will fire, and a plain thread in `Handle::enter`
    /// waiting on this deadline would wait for ever. It times out now.
    fn at_shutdown(&self) {
        let _ = self.ch.try_send(());
    }
}

impl Deadline {
    /// Arms a deadline `d` from now on the calling goroutine's runtime.
    ///
    /// # Panics
    /// Outside a runtime (as `gort::time::after`).
    #[track_caller]
    pub(super) fn after(d: Duration, what: &str) -> Deadline {
        let Some(shared) = sched::current_shared() else {
            panic!(
                "gort: {what} must be called inside a gort runtime (a goroutine, or a thread in \
                 Handle::enter)"
            )
        };
        let timer = Arc::new(Timeout {
            ch: Chan::new(1),
            done: AtomicBool::new(false),
        });
        let when = timers::deadline(shared.epoch, d);
        let p = sched::add_timer(&shared, when, Fire::Call(Target::Counted(timer.clone()), 0));
        Deadline { timer, shared, p }
    }

    /// Ready (a value buffered) once the deadline passed.
    pub(super) fn chan(&self) -> &Chan<()> {
        &self.timer.ch
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if !self.timer.done.swap(true, Ordering::AcqRel) {
            // Not fired: the entry is garbage now.
            self.shared.procs[self.p].timers.note_stale();
        }
    }
}
