//! sysmon (Go's `sysmon`): a thread of its own, without a P, that keeps one blocked goroutine
//! from stalling the others.
//!
//! # What it does, each round
//!
//! 1. Runs timers overdue by 20 ms (`TIMER_SLACK`). A due timer is its P's holder's to fire,
//!    at its next schedule point, into its `runnext` (as in Go): step 2 counts a due timer as
//!    a goroutine waiting for the P, and brings the P's M to that point.
//! 2. For every M that runs goroutine code with a P (`PSlot::in_user_code`), compares its
//!    entry count (`PSlot::entries`) with the last round's. A P whose M has stayed in user code
//!    (no switch, no runtime call) for 20 µs (Go's wait for a P in a system call) while
//!    goroutines wait for the P (its queue, the global queue, a due timer of its own) is:
//!    - left to an idle P if there is one (woken with `wakep`: a spinning M steals the
//!      waiting goroutines, `runnext` included on its last pass), whatever its M does;
//!    - otherwise, if its M's thread is blocked (asleep in the kernel according to `/proc`,
//!      or inside `gort::blocking`), **retaken**: taken from the M (`PSlot::try_take`) and
//!      handed to another M (`idle::handoff_p`: an idle one, or a new thread, Go's
//!      `handoffp`). The M that lost it carries on with its goroutine and learns of the loss
//!      at its next entry into the runtime (`m.rs`). A computing M keeps it until its time
//!      slice is over (below).
//!
//!    Then the **time slices** (`m.rs`, "Time slices"): a P whose schedule tick has not moved
//!    for 10 ms (Go's `forcePreemptNS`) while goroutines wait for it is left to an idle P if
//!    there is one (`wakep`, as above); otherwise it is asked to end the slice
//!    (the P's request, and a poisoned stack-guard word on its M's thread); one whose M is
//!    still in the slice 2 ms later is handed off if the M is in user code (it computes
//!    without a checked call), and asked again otherwise.
//!
//!    gort cannot see when Rust code blocks; the thread's state in `/proc` tells a blocked
//!    thread from a computing one (read at doubling intervals: a run of short system calls
//!    looks the same for a while).
//! 3. Copies out the stacks of goroutines parked for a while, a chunk of records a round
//!    (`copyout`; only with many goroutines alive).
//! 4. Scavenges stack windows that stayed free for a whole period (`StackPool::scavenge`).
//! 5. Prints the `GODEBUG=schedtrace` line when one is due.
//!
//! 0. Before all that, the network: if goroutines wait on sockets, no M is blocked in the poll
//!    and nobody has polled for 10 ms, it polls and readies what is ready (Go's sysmon does
//!    the same).
//!
//! It sleeps 20 µs between rounds, doubling after 50 rounds without a retake, up to 10 ms, and
//! no longer than until a slice, a request or a busy P's timer falls due; a retake resets it (Go's delays; polling, timers and wake-ups do not, as in Go). Once at
//! 10 ms, while every P is idle nothing can be stuck: it sleeps on its note until a P leaves
//! the idle list (`SysmonNote::wake`), then looks again after 1 ms and slows down from there.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Shared;

/// The shortest and longest sleep between rounds (Go: 20 µs, 10 ms).
const MIN_DELAY: Duration = Duration::from_micros(20);
const MAX_DELAY: Duration = Duration::from_millis(10);
/// Rounds without action before the sleep starts doubling (Go: 50, about 1 ms).
const IDLE_ROUNDS: u32 = 50;
/// How long a P may stay in one goroutine run, with others waiting, before sysmon retakes it:
/// the goroutine is blocked (in the kernel, or in `gort::blocking`), or it computes.
const BLOCKED_WAIT: Duration = Duration::from_micros(20);
/// How long a time slice may run with goroutines waiting before sysmon asks it to end (Go's
/// `forcePreemptNS`).
const RUNNING_WAIT: Duration = Duration::from_millis(10);
/// How long a request to end a slice may go unheeded before sysmon hands the P to another
/// thread (a goroutine computing without checked calls cannot see the request).
const PREEMPT_GRACE: Duration = Duration::from_millis(2);
/// How soon after a request sysmon looks again, to see the next slice start.
const SLICE_LOOK: Duration = Duration::from_millis(1);
/// How late a timer may be before sysmon fires it itself (its P's holder fires it otherwise,
/// at the schedule point sysmon's preemption or hand-off brings it to).
const TIMER_SLACK: Duration = Duration::from_millis(20);
/// The delay after a P woke sysmon from its sleep-until-woken: a goroutine that blocks its
/// thread right after a quiet spell stalls the others at most this long.
const KICKED_DELAY: Duration = Duration::from_millis(1);
/// The delay between rounds while a copy-out pass is under way. Copying happens only in rounds
/// where no goroutine waits to run, so the rounds can follow each other closely: after a burst
/// of 2M parked goroutines, 1 ms here took 6.0 s to copy them all out, 50 µs 5.0 s (3M: 8.0
/// and 6.5 s), and the comparison reads memory 10 s after the burst.
const COPYING_DELAY: Duration = Duration::from_micros(50);
/// The stack scavenger's period: a free window that no goroutine took for a whole period is
/// released (`StackPool::scavenge`), at most `SCAVENGE_PER_ROUND` a round.
const SCAVENGE_PERIOD: Duration = Duration::from_secs(1);
const SCAVENGE_PER_ROUND: usize = 1024;
/// While every P is idle sysmon sleeps until woken, but wakes this often anyway.
const DEEP_SLEEP: Duration = Duration::from_secs(1);

/// sysmon's thread and the note it sleeps on.
pub(crate) struct SysmonNote {
    state: Mutex<NoteState>,
    cv: Condvar,
    /// Sleeping until woken (every P idle): a P leaving the idle list must wake it.
    deep: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Seconds since the runtime's epoch, as of sysmon's last round: the coarse clock parked
    /// goroutines stamp themselves with (`Goroutine::wait_since`), one load per park.
    pub(crate) coarse_secs: AtomicU32,
}

#[derive(Default)]
struct NoteState {
    stop: bool,
    kicked: bool,
}

impl SysmonNote {
    pub(crate) fn new() -> SysmonNote {
        SysmonNote {
            state: Mutex::new(NoteState::default()),
            cv: Condvar::new(),
            deep: AtomicBool::new(false),
            thread: Mutex::new(None),
            coarse_secs: AtomicU32::new(0),
        }
    }

    /// A P left the idle list: if sysmon sleeps until woken, wake it.
    #[inline]
    pub(crate) fn wake(&self) {
        if self.deep.load(Ordering::Relaxed) {
            let mut st = self.state.lock();
            st.kicked = true;
            self.cv.notify_one();
        }
    }

    /// Tells sysmon to exit (shutdown).
    pub(crate) fn stop(&self) {
        let mut st = self.state.lock();
        st.stop = true;
        self.cv.notify_one();
    }

    /// Waits for sysmon's thread to exit (after `stop`).
    pub(crate) fn join(&self) {
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    /// Sleeps `d` (or until woken, with `deep`).
    fn sleep(&self, d: Duration, deep: bool) -> Woke {
        let mut st = self.state.lock();
        if deep {
            self.deep.store(true, Ordering::SeqCst);
        }
        if !st.stop && !st.kicked {
            let _ = self.cv.wait_for(&mut st, d);
        }
        let kicked = std::mem::take(&mut st.kicked);
        self.deep.store(false, Ordering::Relaxed);
        Woke {
            stop: st.stop,
            kicked,
        }
    }
}

/// What a round's `retake` did and asks for.
struct Retaken {
    /// It handed off a P (sysmon stays at its shortest delay).
    acted: bool,
    /// When the next round should look again, if sooner than the delay.
    look: Option<Instant>,
}

/// How sysmon's sleep ended.
struct Woke {
    /// Told to stop (shutdown).
    stop: bool,
    /// Woken by a P that left the idle list (sysmon was in its deep sleep).
    kicked: bool,
}

/// Starts sysmon for `shared`.
pub(crate) fn start(shared: &Arc<Shared>) {
    let sh = shared.clone();
    let t = std::thread::Builder::new()
        .name(format!("{}sysmon", shared.config.thread_name))
        .spawn(move || sysmon(sh))
        .unwrap_or_else(|e| crate::panic::throw(&format!("newosproc: cannot start sysmon: {e}")));
    *shared.sysmon.thread.lock() = Some(t);
}

/// What sysmon saw of one P's M last round (is it stuck in one goroutine run?).
#[derive(Clone, Copy)]
struct Seen {
    entries: u32,
    m: usize,
    since: Instant,
    /// How long into this run the M's thread state is looked at next: `BLOCKED_WAIT`, then
    /// doubling each time the thread was found computing (a run of short system calls looks
    /// the same for a while; reading `/proc` every round would cost a core a fair share).
    check_at: Duration,
}

/// What sysmon saw of one P's time slice (Go's `sysmontick`).
#[derive(Clone, Copy)]
struct Slice {
    /// The P's schedule tick (`Processor::slice`): a new value is a new slice.
    tick: u32,
    /// The round that first saw this tick: the slice began a little earlier.
    since: Instant,
    /// When sysmon asked for the slice to end, if it has.
    asked: Option<Instant>,
}

/// What sysmon keeps between rounds about the Ps.
struct Watch {
    seen: Vec<Option<Seen>>,
    slices: Vec<Option<Slice>>,
    stats: ThreadStats,
}

/// The `/proc/self/task/<tid>/stat` file of the M holding each P, kept open and re-read with
/// `pread` (one system call a look instead of five). One per P at most: an M that lost its P
/// is of no further interest, and a descriptor per thread ever seen would leak with the
/// threads (thousands of them under a flood of blocking calls, past `ulimit -n`).
struct ThreadStats {
    files: Vec<Option<(i32, std::fs::File)>>,
}

impl ThreadStats {
    fn new(nprocs: usize) -> ThreadStats {
        ThreadStats {
            files: (0..nprocs).map(|_| None).collect(),
        }
    }

    /// Whether thread `tid`, which holds P `pid`, is asleep in the kernel (state `S` or `D`):
    /// blocked in a system call rather than computing.
    fn blocked(&mut self, pid: usize, tid: i32) -> bool {
        use std::os::unix::fs::FileExt;
        if tid == 0 {
            return false;
        }
        let file = &mut self.files[pid];
        if file.as_ref().map(|f| f.0) != Some(tid) {
            // Replaces (closes) the file of the M that held the P before.
            *file = std::fs::File::open(format!("/proc/self/task/{tid}/stat"))
                .ok()
                .map(|f| (tid, f));
        }
        let Some((_, f)) = file else {
            return false;
        };
        let mut buf = [0u8; 512];
        let n = match f.read_at(&mut buf, 0) {
            Ok(n) => n,
            Err(_) => {
                *file = None; // the thread is gone
                return false;
            }
        };
        let stat = &buf[..n];
        // The state follows the command name, which ends at the last ')'.
        let Some(close) = stat.iter().rposition(|&b| b == b')') else {
            return false;
        };
        matches!(stat.get(close + 2), Some(b'S' | b'D'))
    }
}

fn sysmon(shared: Arc<Shared>) {
    super::checkdead::RUNTIME_THREADS.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    let mut delay = MIN_DELAY;
    let mut idle_rounds = 0u32;
    let nprocs = shared.procs.len();
    let mut watch = Watch {
        seen: vec![None; nprocs],
        slices: vec![None; nprocs],
        stats: ThreadStats::new(nprocs),
    };
    // When a round is due because of a time slice or a busy P's timer (`retake`).
    let mut next_look: Option<Instant> = None;
    let trace = Duration::from_millis(shared.config.schedtrace_ms);
    let mut next_trace = start + trace;
    let mut scanner = super::copyout::Scanner::new(start);
    // A copy-out pass is under way: rounds stay short (`COPYING_DELAY`) until it is done.
    let mut copying = false;
    // The scavenger owes windows from its last period: rounds stay short too.
    let mut scavenging = false;
    let mut next_scavenge = start + SCAVENGE_PERIOD;
    loop {
        let nprocs = shared.procs.len();
        let all_idle =
            shared.idle.idle_ps() >= nprocs && shared.lost_p_running.load(Ordering::SeqCst) == 0;
        let stop = if all_idle && trace.is_zero() && delay >= MAX_DELAY && !copying && !scavenging {
            // Nothing runs, so nothing can be stuck; Ms asleep wake for their own timers. Only
            // once sysmon has slowed down to its longest delay: under bursty load every P goes
            // idle for moments, and a wake-up each time a P then leaves the idle list would
            // cost more than the rounds it saves.
            let Woke { stop, kicked } = shared.sysmon.sleep(DEEP_SLEEP, true);
            if kicked {
                // Work arrived after a quiet spell: look again soon, then slow down again.
                delay = KICKED_DELAY;
                idle_rounds = IDLE_ROUNDS;
            }
            stop
        } else {
            let mut d = if trace.is_zero() {
                delay
            } else {
                delay.min(next_trace.saturating_duration_since(Instant::now()))
            };
            if copying || scavenging {
                d = d.min(COPYING_DELAY);
            }
            if let Some(at) = next_look {
                d = d.min(at.saturating_duration_since(Instant::now()).max(MIN_DELAY));
            }
            shared.sysmon.sleep(d, false).stop
        };
        if stop || shared.is_shutdown() {
            break;
        }
        let now = Instant::now();
        shared.sysmon.coarse_secs.store(
            now.saturating_duration_since(shared.epoch).as_secs() as u32,
            Ordering::Relaxed,
        );
        // Only a retake keeps sysmon at its shortest delay (Go's `idle = 0` after `retake`
        // handed off a P): polling, timers and wake-ups are routine under load, and a sysmon
        // that wakes every 20 µs for them costs a busy machine a share of a core.
        // 0. The network, if nobody has polled for 10 ms (Go's sysmon does the same).
        if let Some(poller) = super::poller::active() {
            if !poller.is_blocked() && poller.since_last_poll() > Duration::from_millis(10) {
                for g in poller.poll_now() {
                    crate::sched::ready(g);
                }
            }
        }
        // 1. Timers overdue by `TIMER_SLACK` (cheap unless one is). A due timer is the P's
        // holder's to fire at its next schedule point, into its `runnext` (as in Go); a due
        // timer counts as work waiting, so step 2 gets a busy P there (a preemption, or a
        // hand-off from a blocked M). Fired here, the goroutine would go to the back of the
        // global queue, behind everything queued (a flood of blocking calls kept a 10 ms
        // ticker from its goroutine for 680 ms). A timer taken off its heap is neither a
        // pending timer nor queued work until it has fired (readied a goroutine, started an
        // `after_func` one): counted as a thread running without a P meanwhile, so deadlock
        // detection does not take that moment for a deadlock (SeqCst, as every use of the
        // counter; checkdead reads it after the heaps and queues).
        let now_ns = super::timers::nanos_since(shared.epoch, now);
        let slack = TIMER_SLACK.as_nanos() as u64;
        let mut counted = false;
        let mut clock = None;
        for p in shared.procs.iter() {
            if p.timers.next().saturating_add(slack) <= now_ns {
                if !std::mem::replace(&mut counted, true) {
                    shared.lost_p_running.fetch_add(1, Ordering::SeqCst);
                }
                super::run_due_timers(&shared, p, &mut clock);
            }
        }
        if counted {
            shared.lost_p_running.fetch_sub(1, Ordering::SeqCst);
        }
        // 2. Ps stuck in one goroutine run, or in one time slice.
        let Retaken { acted, look } = retake(&shared, &mut watch, now);
        next_look = look;
        // 3. Copy-out of long-parked goroutines' stacks (`copyout`), a chunk a round.
        copying = super::copyout::round(&shared, &mut scanner, now);
        // 4. The stack scavenger: free windows unused for a whole period go back to the
        // kernel (and, on old kernels, give back their map budget).
        let period = now >= next_scavenge;
        if period {
            next_scavenge = now + SCAVENGE_PERIOD;
            super::copyout::trim_heap(&shared);
        }
        if period || scavenging {
            scavenging = shared.stacks.scavenge(period, SCAVENGE_PER_ROUND);
        }
        // 5. schedtrace.
        if !trace.is_zero() && now >= next_trace {
            let mut out = String::new();
            super::trace::schedtrace(&shared, start, &mut out);
            eprint!("{out}");
            next_trace = now + trace;
        }
        if acted {
            delay = MIN_DELAY;
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            if idle_rounds > IDLE_ROUNDS {
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
    super::checkdead::RUNTIME_THREADS.fetch_sub(1, Ordering::SeqCst);
}

/// Step 2 of the round: returns whether it handed off a P, and when the next round should
/// look again (a slice that will have run `RUNNING_WAIT` with goroutines waiting, a request
/// that will have been ignored for `PREEMPT_GRACE`, a due timer of a P whose M computes, the
/// first look at the slice after a request).
fn retake(shared: &Arc<Shared>, watch: &mut Watch, now: Instant) -> Retaken {
    // Cheap looks under the sched lock; the expensive ones (the thread's state, the take)
    // after it.
    let mut stuck: Vec<(Arc<super::m::Machine>, usize, Duration)> = Vec::new();
    let mut slices: Vec<(Arc<super::m::Machine>, usize)> = Vec::new();
    {
        let s = shared.sched.lock();
        for m in s.allm.iter() {
            if !m.slot.holds() {
                continue;
            }
            let pid = m.pid.load(Ordering::Relaxed);
            let tick = shared.procs[pid].slice();
            match &mut watch.slices[pid] {
                Some(sl) if sl.tick == tick => slices.push((m.clone(), pid)),
                slot => {
                    *slot = Some(Slice {
                        tick,
                        since: now,
                        asked: None,
                    })
                }
            }
            if !m.slot.in_user_code() {
                continue;
            }
            let entries = m.slot.entries();
            match &mut watch.seen[pid] {
                Some(s) if s.entries == entries && s.m == m.id => {
                    stuck.push((m.clone(), pid, now.saturating_duration_since(s.since)));
                }
                slot => {
                    *slot = Some(Seen {
                        entries,
                        m: m.id,
                        since: now,
                        check_at: BLOCKED_WAIT,
                    })
                }
            }
        }
    }
    let mut acted = false;
    let mut look: Option<Instant> = None;
    let mut look_at = |t: Instant| look = Some(look.map_or(t, |l| l.min(t)));
    let now_ns = super::timers::nanos_since(shared.epoch, now);
    // Goroutines wait for the P: queued on it or globally, or due to be readied by its timers.
    let waiting = |pid: usize| {
        let p = &shared.procs[pid];
        p.runq_len() > 0 || !shared.global.is_empty() || p.timers.next() <= now_ns
    };
    // Blocked Ms: in the kernel or in `gort::blocking` for `BLOCKED_WAIT`, with goroutines
    // waiting for their P.
    for (m, pid, for_how_long) in stuck {
        // The M cannot run its P's timers before its next schedule point: when one falls due,
        // goroutines wait for the P (`waiting`), and the round then must look.
        let next = shared.procs[pid].timers.next();
        if next != u64::MAX && next > now_ns {
            look_at(shared.epoch + Duration::from_nanos(next));
        }
        if !waiting(pid) || for_how_long < BLOCKED_WAIT {
            continue;
        }
        if shared.idle.idle_ps() > 0 {
            // An idle P can take the waiting goroutines: a spinning M steals them.
            super::idle::wakep(shared);
            continue;
        }
        let blocked = m.in_blocking.load(Ordering::Relaxed) || {
            let check_at = watch.seen[pid].map_or(BLOCKED_WAIT, |s| s.check_at);
            for_how_long >= check_at && {
                let b = watch.stats.blocked(pid, m.tid.load(Ordering::Relaxed));
                if !b {
                    if let Some(s) = &mut watch.seen[pid] {
                        s.check_at = (for_how_long * 2).min(RUNNING_WAIT);
                    }
                }
                b
            }
        };
        if blocked && hand_off(shared, &m, pid) {
            watch.seen[pid] = None;
            watch.slices[pid] = None;
            acted = true;
        }
    }
    // Long time slices: ask them to end; hand off the P of one that ignores the request (it
    // computes without a checked call or a runtime call).
    for (m, pid) in slices {
        let Some(sl) = watch.slices[pid] else {
            continue; // handed off above
        };
        if !waiting(pid) {
            // A timer of its that falls due makes it wait: look again then.
            let next = shared.procs[pid].timers.next();
            if next != u64::MAX && next > now_ns {
                look_at(shared.epoch + Duration::from_nanos(next));
            }
            continue;
        }
        if shared.idle.idle_ps() > 0 {
            super::idle::wakep(shared);
            continue;
        }
        let age = now.saturating_duration_since(sl.since);
        match sl.asked {
            None if age >= RUNNING_WAIT => {
                let p = &shared.procs[pid];
                p.request_preempt();
                m.poison_guard();
                p.preempts.fetch_add(1, Ordering::Relaxed);
                watch.slices[pid] = Some(Slice {
                    asked: Some(now),
                    ..sl
                });
                // Honoured, the next slice starts at once: see it soon, so that its age is
                // measured from about its start.
                look_at(now + SLICE_LOOK);
                look_at(now + PREEMPT_GRACE);
            }
            None => look_at(sl.since + RUNNING_WAIT),
            Some(asked) if now.saturating_duration_since(asked) >= PREEMPT_GRACE => {
                if m.slot.in_user_code() && hand_off(shared, &m, pid) {
                    watch.seen[pid] = None;
                    watch.slices[pid] = None;
                    acted = true;
                } else {
                    // Still in the slice: the poison may have been overwritten before anything
                    // saw it (a segment change), and a goroutine that is mostly in runtime
                    // calls (a ping-pong) is rarely in user code for a hand-off. Ask again,
                    // and look again soon.
                    shared.procs[pid].request_preempt();
                    m.poison_guard();
                    look_at(now + SLICE_LOOK);
                }
            }
            Some(asked) => look_at(asked + PREEMPT_GRACE),
        }
    }
    Retaken { acted, look }
}

/// Takes P `pid` from `m` and hands it to another M (an idle one, or a new thread; Go's
/// `handoffp`). The M that lost it carries on with its goroutine and learns of the loss at
/// its next entry into the runtime. False if the M entered the runtime meanwhile.
fn hand_off(shared: &Arc<Shared>, m: &super::m::Machine, pid: usize) -> bool {
    let p = &shared.procs[pid];
    // Counted before the take: the M that lost its P decrements at its next schedule point,
    // which cannot come before the take.
    shared.lost_p_running.fetch_add(1, Ordering::SeqCst);
    let Some(core) = m.slot.try_take() else {
        shared.lost_p_running.fetch_sub(1, Ordering::SeqCst);
        return false;
    };
    // A request to the M that lost the P is moot; the P's next holder starts afresh.
    p.clear_preempt();
    super::idle::handoff_p(shared, core);
    true
}
