//! Deadlock detection (Go's `checkdead`): when every goroutine of every runtime of the
//! process is blocked and nothing outside could wake one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{fatal, timers, Shared, Status};

/// Threads of live runtimes in this process: their Ms, and the threads waiting in `run` or
/// `#[gort::main]` (an M that waits in a nested `run` is counted once, as an M). Deadlock
/// detection compares it with the process's thread count.
pub(crate) static RUNTIME_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The runtime of `#[gort::main]` after main returned: not torn down, the process exits.
pub(crate) static PROCESS_RUNTIME: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());

/// Every runtime of the process (dead entries are pruned when one is added): a goroutine of
/// one runtime can wake a goroutine of another through a channel, so deadlock detection looks
/// at all of them.
pub(crate) static RUNTIMES: Mutex<Vec<std::sync::Weak<Shared>>> = Mutex::new(Vec::new());

/// Threads of this process (`/proc/self/stat`, field 20); `usize::MAX` if unknown.
fn process_threads() -> usize {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return usize::MAX;
    };
    s.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Go's `checkdead`, run by an M about to sleep with every P idle (`timers_pending`: some P
/// has a timer, which will wake an M); with every P idle the per-P goroutine counts are
/// stable. `Some(instant)`: undecided, look again then (the M sleeps until it).
///
/// If main called Goexit and no goroutine is left: `fatal error: no goroutines (main called
/// runtime.Goexit) - deadlock!`. Otherwise it reports a deadlock when all of these hold:
///
/// 1. every P is idle and the global queue is empty: no goroutine is running or runnable;
/// 2. at least one goroutine is alive: each is parked on a channel, select, lock, `WaitGroup`,
///    `Cond`, join, or blocks forever (a nil channel, an empty select);
/// 3. no timer is pending on any P (a timer could wake one);
/// 4. no M runs goroutine code without a P (in a blocking call, or sysmon firing timers); one
///    that does postpones the decision;
/// 5. no thread outside the runtimes could wake one: the process has no threads but the Ms
///    of gort runtimes and the threads waiting in `run` / `#[gort::main]` (and, under
///    `#[gort::test]`, the harness's main thread). Any other thread may hold a channel or a
///    `Handle`, so its presence only postpones the decision: it is looked at again after a
///    back-off (10 ms doubling to 1 s), and the returned instant says when;
/// 6. every other runtime of the process is quiescent (`Shared::quiescent`): a goroutine of
///    another runtime that runs, or a timer of it, could wake one of ours through a channel.
///    A busy runtime postpones the decision the same way;
/// 7. no goroutine or task waits on the network poller (it is not deadlocked: Go's
///    `netpollWaiters`), and main has not finished (the runtime is ending anyway).
pub(crate) fn check_dead(shared: &Shared, timers_pending: bool) -> Option<Instant> {
    let live = shared.num_goroutine();
    if live == 0 && shared.main_goexited.load(Ordering::SeqCst) {
        let msg = "fatal error: no goroutines (main called runtime.Goexit) - deadlock!";
        fatal(shared, Box::new(msg), format!("{msg}\n"));
        return None;
    }
    // The counter before the queue: sysmon counts itself in it while it fires timers, and
    // what a fired timer readies is queued before it counts itself out.
    let running = shared.running_without_p() != 0;
    if timers_pending || !shared.global.is_empty() || live == 0 || super::poller::waiters() != 0 {
        // Something will run: a timer, a queued goroutine, or the poller's.
        return None;
    }
    if shared.outcome.lock().finished {
        return None;
    }
    // Reading the thread count costs a file read: while other threads keep the decision
    // open, look again only after the back-off (an M going idle often must not pay for it).
    let now = timers::nanos_since(shared.epoch, Instant::now());
    let next = shared.dead_next_check.load(Ordering::Relaxed);
    if now < next {
        return Some(shared.epoch + Duration::from_nanos(next));
    }
    let backoff = || {
        let ms = shared.dead_backoff_ms.load(Ordering::Relaxed);
        shared
            .dead_backoff_ms
            .store((ms * 2).min(1000), Ordering::Relaxed);
        let next = now + ms * 1_000_000;
        shared.dead_next_check.store(next, Ordering::Relaxed);
        Some(shared.epoch + Duration::from_nanos(next))
    };
    if running {
        // An M that lost its P in a blocking call runs (Go counts Ms in system calls as
        // running); it checks again when it goes idle. But sysmon also counts itself in for a
        // moment in every round, while it looks at the timers, and a check that saw only that
        // moment would never be repeated: the program hung with every goroutine asleep. So
        // this is a postponement, like the others, not an answer.
        return backoff();
    }
    // Rule 6 first (and rule 1 again after it): a goroutine of another runtime that readied
    // one of ours did so before its P went idle, so once that runtime reads as idle, our
    // global queue shows the goroutine.
    let mut harness = shared.config.test_harness;
    {
        let all = RUNTIMES.lock();
        for o in all.iter().filter_map(std::sync::Weak::upgrade) {
            if std::ptr::eq(&*o, shared) {
                continue;
            }
            harness |= o.config.test_harness;
            if !o.quiescent() {
                drop(all);
                return backoff();
            }
        }
    }
    if !shared.global.is_empty() {
        return None;
    }
    if process_threads() > RUNTIME_THREADS.load(Ordering::SeqCst) + usize::from(harness) {
        undecided_notice(shared, now);
        return backoff();
    }
    let msg = "fatal error: all goroutines are asleep - deadlock!";
    let mut report = format!("{msg}\n");
    for g in shared.allgs.lock().iter() {
        if matches!(g.status(), Status::Waiting | Status::Runnable) {
            report.push('\n');
            g.describe_waiting(&mut report);
        }
    }
    fatal(shared, Box::new(msg), report);
    None
}

/// How long everything may stay blocked, undecided, before `undecided_notice` speaks.
const UNDECIDED_NOTICE_AFTER: Duration = Duration::from_secs(5);

/// Deadlock detection could not decide because other threads exist: after
/// `UNDECIDED_NOTICE_AFTER` of nothing running, say so once on stderr, so that a test (most
/// often a plain `#[test]` around `gort::run`, whose harness threads are such threads) does
/// not hang without a word. Only under `gort::run` (`RunMode::Embedded`), where a test harness
/// may be what holds those threads. The runtime keeps waiting: one of those threads may
/// still wake a goroutine.
fn undecided_notice(shared: &Shared, now: u64) {
    if shared.config.mode == super::RunMode::Process {
        // `#[gort::main]` is a program, not a test: a server whose goroutines all wait for a
        // signal a plain thread delivers (the `ctrlc` crate) is healthy, and the advice
        // (`#[gort::test]`) cannot help it.
        return;
    }
    let since = shared.dead_blocked_since.load(Ordering::Relaxed);
    if since == 0 {
        shared.dead_blocked_since.store(now + 1, Ordering::Relaxed);
        return;
    }
    if now.saturating_sub(since - 1) < UNDECIDED_NOTICE_AFTER.as_nanos() as u64
        || shared.dead_notice.swap(true, Ordering::Relaxed)
    {
        return;
    }
    let mut blocked = String::new();
    for g in shared.allgs.lock().iter() {
        if matches!(g.status(), Status::Waiting) {
            blocked.push('\n');
            g.describe_waiting(&mut blocked);
        }
    }
    eprint!(
        "gort: every goroutine has been blocked for {} s, but this process has threads outside \
         the runtime, which might still wake one, so gort cannot report a deadlock. If this is \
         a plain #[test] that calls gort::run, the test harness's threads are such threads: \
         use #[gort::test], which reports a deadlock at once. Blocked:\n{blocked}",
        UNDECIDED_NOTICE_AFTER.as_secs()
    );
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A goroutine asleep while an M (or sysmon, for the moment it looks at the timers) is
    /// counted as running without a P: the check is postponed with a time to look again, never
    /// dropped (it was dropped, and a deadlocked program hung with every M asleep).
    #[test]
    fn a_thread_running_without_a_p_postpones_the_check() {
        let shared = Shared::new(
            crate::Builder::new()
                .procs(1)
                .config(super::super::RunMode::Embedded),
        );
        shared.ext_live.fetch_add(1, Ordering::SeqCst); // one goroutine, parked
        shared.lost_p_running.fetch_add(1, Ordering::SeqCst);
        let again = check_dead(&shared, false);
        shared.lost_p_running.fetch_sub(1, Ordering::SeqCst);
        shared.ext_live.fetch_sub(1, Ordering::SeqCst);
        assert!(again.is_some(), "the check was dropped, not postponed");
    }

    /// A runtime between its registration and the queueing of goroutine 1 has nothing
    /// queued, no timer and every P idle, but it is about to run: another runtime's deadlock
    /// check must not call it quiescent (one did, and reported a deadlock while the other
    /// runtime started the goroutine that would have sent). Nor may a runtime whose sched lock
    /// is held (its Ps may be turning busy) be called quiescent.
    #[test]
    fn a_starting_or_locked_runtime_is_not_quiescent() {
        let shared = Shared::new(
            crate::Builder::new()
                .procs(2)
                .config(super::super::RunMode::Embedded),
        );
        assert!(!shared.quiescent(), "a starting runtime read as quiescent");
        shared.starting.store(false, Ordering::SeqCst);
        assert!(shared.quiescent(), "an idle runtime read as busy");
        let held = shared.sched.lock();
        assert!(
            !shared.quiescent(),
            "a runtime whose sched lock is held read as quiescent"
        );
        drop(held);
        assert!(shared.quiescent());
    }
}
