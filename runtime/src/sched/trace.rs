//! The scheduler's numbers ([`SchedStats`], read by `gort::debug::sched_stats`) and Go's
//! `GODEBUG=schedtrace` lines, which sysmon prints: both read the scheduler's own state, so
//! they live with it; `gort::debug` is their public face.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Shared, Status};

/// The scheduler's numbers at one moment (racy: each is read on its own), for programs that
/// export metrics.
///
/// ```
/// let s = gort::Builder::new().procs(2).run(gort::debug::sched_stats);
/// assert_eq!(s.gomaxprocs, 2);
/// assert_eq!(s.goroutines, 1); // main
/// assert_eq!(s.local_queues.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedStats {
    /// Goroutines alive (`gort::num_goroutine`).
    pub goroutines: usize,
    /// Processors (GOMAXPROCS).
    pub gomaxprocs: usize,
    /// Processors with nothing to run.
    pub idle_procs: usize,
    /// Threads the runtime started (Ms), not counting sysmon.
    pub threads: usize,
    /// Ms asleep, waiting for work.
    pub idle_threads: usize,
    /// Ms looking for work to steal.
    pub spinning_threads: usize,
    /// Ms running a goroutine without a processor (sysmon took it while the goroutine was
    /// blocked, or `gort::blocking` gave it up).
    pub blocked_threads: usize,
    /// Goroutines in the global run queue.
    pub global_queue: usize,
    /// Goroutines queued on each processor (`runnext` included).
    pub local_queues: Vec<usize>,
    /// Steals so far (each took one or more goroutines from another processor).
    pub steals: u64,
    /// Processors sysmon or `gort::blocking` handed from a blocked thread to another.
    pub handoffs: u64,
    /// Time slices sysmon asked to end (they ran 10 ms with goroutines waiting): the running
    /// goroutine yields at its next schedule point or checked call (Go's preemption).
    pub preemptions: u64,
    /// Parked goroutines whose stack is copied out now (see
    /// [`Builder::copy_out_parked`](crate::Builder::copy_out_parked)).
    pub stacks_copied_out: usize,
    /// The bytes those copies hold.
    pub copied_out_bytes: usize,
    /// Copy-outs since the runtime started.
    pub copy_outs: u64,
    /// Stack segments goroutines hold beyond their windows, in use or kept spare (see
    /// [`maybe_grow`](crate::maybe_grow)).
    pub stack_segments: usize,
    /// Segments taken from the stack pool for growth since the runtime started.
    pub stack_growths: u64,
    /// Free stack windows in the runtime's pool with their pages (reused warm), and free ones
    /// whose pages went back to the kernel (the scavenger, or map pressure). Windows cached on
    /// a processor (63 at most each) are not counted.
    pub free_stacks: usize,
    /// See `free_stacks`.
    pub released_stacks: usize,
    /// Whether guard pages are `mprotect` islands (a kernel before Linux 6.13, which lacks
    /// `MADV_GUARD_INSTALL`): each committed stack window then costs about two memory maps,
    /// and at most `stack_map_budget` are committed at once in the process
    /// (docs/stacks.md, "The map budget").
    pub mprotect_guards: bool,
    /// Stack windows committed now in the whole process, with `mprotect` guards (0 otherwise).
    pub committed_stacks: usize,
    /// The most windows `mprotect` guards may keep committed: `(vm.max_map_count - 8192) / 2`.
    pub stack_map_budget: usize,
}

pub(crate) fn stats(shared: &Shared) -> SchedStats {
    let (free_stacks, released_stacks) = shared.stacks.free_windows();
    let (threads, idle_threads) = {
        let s = shared.sched.lock();
        let idle = s
            .allm
            .iter()
            .filter(|m| m.sleeping.load(Ordering::Relaxed))
            .count();
        (s.mcount, idle)
    };
    SchedStats {
        goroutines: shared.num_goroutine(),
        gomaxprocs: shared.procs.len(),
        idle_procs: shared.idle.idle_ps(),
        threads,
        idle_threads,
        spinning_threads: shared.idle.spinning(),
        blocked_threads: shared.lost_p_running.load(Ordering::Relaxed),
        global_queue: shared.global.len(),
        local_queues: shared.procs.iter().map(|p| p.runq_len()).collect(),
        steals: shared
            .procs
            .iter()
            .map(|p| p.steals.load(Ordering::Relaxed))
            .sum(),
        handoffs: shared
            .procs
            .iter()
            .map(|p| p.handoffs.load(Ordering::Relaxed))
            .sum(),
        preemptions: shared
            .procs
            .iter()
            .map(|p| p.preempts.load(Ordering::Relaxed))
            .sum(),
        stacks_copied_out: shared.copyout.out_now.load(Ordering::Relaxed).max(0) as usize,
        copied_out_bytes: shared.copyout.bytes_now.load(Ordering::Relaxed).max(0) as usize,
        copy_outs: shared.copyout.total.load(Ordering::Relaxed),
        stack_segments: shared.growth.held.load(Ordering::Relaxed),
        stack_growths: shared.growth.taken.load(Ordering::Relaxed),
        free_stacks,
        released_stacks,
        mprotect_guards: crate::coro::stack::mprotect_mode(),
        committed_stacks: crate::coro::stack::committed_windows(),
        stack_map_budget: crate::coro::stack::map_budget(),
    }
}

/// Go's `schedtrace` line (and, with `scheddetail`, a line per P, M and G):
/// `SCHED 1004ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0 idlethreads=2
/// runqueue=0 [0 0]`. `threads` counts the Ms and sysmon, as Go's does.
pub(crate) fn schedtrace(shared: &Shared, start: Instant, out: &mut String) {
    use std::fmt::Write as _;
    let s = stats(shared);
    let queues: Vec<String> = s.local_queues.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(
        out,
        "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads={} \
         runqueue={} [{}]",
        start.elapsed().as_millis(),
        s.gomaxprocs,
        s.idle_procs,
        s.threads + 1,
        s.spinning_threads,
        s.idle_threads,
        s.global_queue,
        queues.join(" ")
    );
    if !shared.config.scheddetail {
        return;
    }
    for p in shared.procs.iter() {
        let _ = writeln!(
            out,
            "  P{}: runqsize={} timers={} steals={} handoffs={} preemptions={}",
            p.id,
            p.runq_len(),
            p.timers.len(),
            p.steals.load(Ordering::Relaxed),
            p.handoffs.load(Ordering::Relaxed),
            p.preempts.load(Ordering::Relaxed)
        );
    }
    let ms = shared.sched.lock().allm.clone();
    for m in ms {
        let held = m.slot.holds();
        let _ = writeln!(
            out,
            "  M{}: p={} sleeping={} blocking={} exited={}",
            m.id,
            if held {
                m.pid.load(Ordering::Relaxed) as i64
            } else {
                -1
            },
            m.sleeping.load(Ordering::Relaxed),
            m.in_blocking.load(Ordering::Relaxed),
            m.exited.load(Ordering::Relaxed)
        );
    }
    for g in shared.allgs.lock().iter() {
        let st = g.status();
        if matches!(st, Status::Dead | Status::Idle) {
            continue;
        }
        // The reason only while waiting: a goroutine about to park has stored its reason
        // before the switch (`sched::park`) but still runs.
        let reason = if st == Status::Waiting {
            g.wait_reason().as_str()
        } else {
            ""
        };
        let _ = writeln!(out, "  G{}: status={:?}({})", g.id(), st, reason);
    }
}
