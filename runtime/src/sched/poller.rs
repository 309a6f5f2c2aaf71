//! The network poller as the scheduler sees it: the [`NetPoller`] trait, which the poller
//! (`netpoll`) implements and registers once, when it is made. The schedule loop, sysmon and
//! deadlock detection call through it and name no socket type (Go: `netpoll`,
//! `netpollBreak`, `netpollinited`, `netpollWaiters` as `proc.go` sees them).
//!
//! Invariant: the poller registers before anyone can park on it (`netpoll::poller` registers
//! inside its one-time initialisation), so a goroutine counted in `waiters` is always seen by
//! [`active`].

use std::sync::OnceLock;
use std::time::Duration;

use super::GRef;

/// What the scheduler needs of a network poller.
pub(crate) trait NetPoller: Sync {
    /// Goroutines and tasks parked on it (Go's `netpollWaiters`): while any are, nobody is
    /// deadlocked and the schedule loop polls.
    fn waiters(&self) -> usize;
    /// Polls once without blocking; returns the goroutines it unblocked, for the caller to
    /// ready (Go's `netpoll(0)`).
    fn poll_now(&self) -> Vec<GRef>;
    /// Whether an M is blocked in the poll.
    fn is_blocked(&self) -> bool;
    /// Takes the one blocking role; false if another M holds it.
    fn try_block(&self) -> bool;
    /// Blocks in the poll until an event, `timeout` or [`NetPoller::interrupt`]; ends the
    /// blocking role. Only after `try_block` succeeded.
    fn poll_blocking(&self, timeout: Option<Duration>) -> Vec<GRef>;
    /// Interrupts a blocked poll (Go's `netpollBreak`).
    fn interrupt(&self);
    /// Time since anyone last polled (sysmon polls after 10 ms).
    fn since_last_poll(&self) -> Duration;
}

static POLLER: OnceLock<&'static dyn NetPoller> = OnceLock::new();

/// Registers the process's poller (once; a second is a runtime error).
pub(crate) fn register(p: &'static dyn NetPoller) {
    if POLLER.set(p).is_err() {
        crate::panic::throw("sched: a second network poller registered");
    }
}

/// The poller, if one was made.
#[inline]
pub(crate) fn get() -> Option<&'static dyn NetPoller> {
    POLLER.get().copied()
}

/// The poller if goroutines wait on it: the schedule loop's cheap check.
#[inline]
pub(crate) fn active() -> Option<&'static dyn NetPoller> {
    let p = get()?;
    (p.waiters() > 0).then_some(p)
}

/// Goroutines and tasks parked on the poller (0 without one).
pub(crate) fn waiters() -> usize {
    get().map_or(0, |p| p.waiters())
}

/// Interrupts a blocked poll, if there is a poller.
pub(crate) fn interrupt() {
    if let Some(p) = get() {
        p.interrupt();
    }
}
