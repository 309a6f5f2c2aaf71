//! A socket's poll descriptor (Go's `pollDesc`): who waits for readiness in each direction,
//! the deadlines, and the closing flag. See `mod.rs` for the protocol.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::loom::AtomicUsize;

use parking_lot::Mutex;

use crate::sched::timers::{Fire, Target, TimerFunc};
use crate::sched::{GRef, Goroutine, Shared, WaitReason};

/// Nobody waits and no readiness is pending.
const NIL: usize = 0;
/// Readiness arrived that nobody has consumed yet.
const READY: usize = 1;
/// A goroutine is about to park.
const WAIT: usize = 2;
/// A task's registration (`PollDesc::poll_ready`): the address of a leaked `Box<Waker>` with
/// this bit set. Goroutine records are 8-byte aligned, and the states are 0, 1 and 2, so the
/// bit tells the two kinds of waiter apart.
const TASK: usize = 4;

/// Whether a word's value is a task's registration.
fn is_task(v: usize) -> bool {
    v > WAIT && v & TASK != 0
}

/// The waiter's first step (Go's `netpollblock` loop): consumes pending readiness (`true`:
/// retry the I/O) or announces `WAIT` (`false`: check the flags, then park).
fn word_prepare(w: &AtomicUsize) -> bool {
    loop {
        if w.compare_exchange(READY, NIL, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return true;
        }
        // Reads the release of a closer's or deadline setter's update of the word (see
        // `word_unblock`), so the flag checks after it see their flags.
        if w.compare_exchange(NIL, WAIT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return false;
        }
        let v = w.load(Ordering::Acquire);
        if v != READY && v != NIL {
            // The direction's turnstile (`net/sock.rs`) lets one goroutine at a time wait.
            crate::panic::throw("netpollblock: two goroutines wait on one socket direction");
        }
    }
}

/// The park function's commit (Go's `netpollblockcommit`): stores the waiter (`raw`, not 0,
/// 1 or 2); `false` if an unblock came first (resume at once).
fn word_commit(w: &AtomicUsize, raw: usize) -> bool {
    // Release: publishes the record to the unblocker (Acquire in `word_unblock`).
    w.compare_exchange(WAIT, raw, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// After the wait: clears the word; `true` if readiness is what ended it.
fn word_finish(w: &AtomicUsize) -> bool {
    w.swap(NIL, Ordering::AcqRel) == READY
}

/// Go's `netpollunblock` on one word: readiness (`io`) or a close/deadline. Returns the stored
/// waiter, if one had committed.
///
/// Every path is a read-modify-write, even when nothing changes (a close that finds `NIL` or
/// `READY` writes it back, as does readiness that finds `READY`; the poller's hang-up flag is
/// published the same way): read-modify-writes of one word are totally ordered, so of a waiter
/// announcing `WAIT` and then reading the flags, and a closer setting a flag and then calling
/// this, the later of the two word updates reads the earlier one's release. Either the waiter
/// sees the flag, or this sees `WAIT` (or the record) and wakes it. (A plain load here would
/// make it a Dekker pair, correct only with sequentially consistent ordering, which loom does
/// not model.)
fn word_unblock(w: &AtomicUsize, io: bool) -> Option<usize> {
    let mut old = w.load(Ordering::Acquire);
    loop {
        let new = match old {
            READY => READY,
            _ if io => READY,
            _ => NIL, // NIL stays; WAIT or a record: the waiter is woken (or will not sleep)
        };
        // AcqRel: Acquire takes the parked record the waiter published (Release in its
        // commit); Release publishes this side's flags and readiness to the waiter's next
        // update of the word.
        match w.compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return (old != WAIT && old != NIL && old != READY).then_some(old),
            Err(v) => old = v,
        }
    }
}

/// `PollDesc::hup` bits.
const HUP_READ: u8 = 1;
const HUP_WRITE: u8 = 2;

/// A direction of a socket.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Read,
    Write,
}

/// Why a wait ended without readiness.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WaitError {
    /// The socket was closed (`close`) while or before waiting.
    Closed,
    /// The direction's deadline passed.
    TimedOut,
}

/// One socket's poll descriptor. Never freed (see `mod.rs`).
pub(crate) struct PollDesc {
    rg: AtomicUsize,
    wg: AtomicUsize,
    closing: AtomicBool,
    /// Sticky, from the kernel's events: the peer closed its end (`HUP_READ`: end of stream or
    /// a reset is waiting to be read) or the connection failed (`HUP_WRITE`). Readiness in that
    /// direction never goes away again, so a caller must not wait for another edge
    /// (`Sock::run_stream`).
    hup: AtomicU8,
    /// Bumped when the descriptor is reused: events and timers of an older generation are
    /// dropped.
    gen: AtomicU32,
    /// Deadlines, as nanoseconds since `EPOCH` (0: none).
    rd: AtomicU64,
    wd: AtomicU64,
    /// The deadline timers of the two directions (armed while a goroutine waits with a
    /// deadline).
    pub(crate) rtimer: NetTimer,
    pub(crate) wtimer: NetTimer,
}

/// The zero of deadlines.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

fn to_nanos(t: Instant) -> u64 {
    (t.saturating_duration_since(epoch()).as_nanos() as u64).max(1)
}

/// Descriptors of closed sockets, for reuse.
static FREE: Mutex<Vec<&'static PollDesc>> = Mutex::new(Vec::new());

impl PollDesc {
    /// A descriptor for a new socket.
    pub(crate) fn alloc() -> &'static PollDesc {
        if let Some(pd) = FREE.lock().pop() {
            pd.closing.store(false, Ordering::Relaxed);
            pd.hup.store(0, Ordering::Relaxed);
            pd.rd.store(0, Ordering::Relaxed);
            pd.wd.store(0, Ordering::Relaxed);
            pd.rg.store(NIL, Ordering::Relaxed);
            pd.wg.store(NIL, Ordering::Relaxed);
            // Release: a token of the new generation is published with the registration.
            pd.gen.fetch_add(1, Ordering::Release);
            return pd;
        }
        let pd: &'static PollDesc = Box::leak(Box::new(PollDesc {
            rg: AtomicUsize::new(NIL),
            wg: AtomicUsize::new(NIL),
            closing: AtomicBool::new(false),
            hup: AtomicU8::new(0),
            gen: AtomicU32::new(1),
            rd: AtomicU64::new(0),
            wd: AtomicU64::new(0),
            rtimer: NetTimer::new(Mode::Read),
            wtimer: NetTimer::new(Mode::Write),
        }));
        pd.rtimer
            .pd
            .store(pd as *const PollDesc as usize, Ordering::Relaxed);
        pd.wtimer
            .pd
            .store(pd as *const PollDesc as usize, Ordering::Relaxed);
        pd
    }

    /// Gives a closed socket's descriptor back (after deregistration). A task's registration
    /// still in a word is dropped: the socket it waited on is gone.
    pub(crate) fn free(&'static self) {
        self.closing.store(true, Ordering::SeqCst);
        for mode in [Mode::Read, Mode::Write] {
            let v = self.word(mode).swap(NIL, Ordering::AcqRel);
            if is_task(v) {
                // SAFETY: a task record is a `Box<Waker>` leaked by `poll_ready` and owned by
                // the word until taken; the swap took it.
                drop(unsafe { Box::from_raw((v & !TASK) as *mut Waker) });
                super::poller().waiting(-1);
            }
        }
        self.gen.fetch_add(1, Ordering::Release);
        FREE.lock().push(self);
    }

    /// The registration token: the address (48 bits on the platforms gort runs on) and the
    /// generation's low 16 bits.
    pub(crate) fn token(&'static self) -> mio::Token {
        let addr = self as *const PollDesc as usize;
        let gen = self.gen.load(Ordering::Acquire) as usize & 0xffff;
        mio::Token(addr | (gen << 48))
    }

    /// The descriptor of a token, if its generation is still the current one.
    pub(crate) fn from_token(t: mio::Token) -> Option<&'static PollDesc> {
        let addr = t.0 & ((1 << 48) - 1);
        let gen = (t.0 >> 48) as u32;
        // SAFETY: every token was made by `token` from a leaked (never freed) descriptor.
        let pd = unsafe { &*(addr as *const PollDesc) };
        (pd.gen.load(Ordering::Acquire) & 0xffff == gen).then_some(pd)
    }

    fn word(&self, mode: Mode) -> &AtomicUsize {
        match mode {
            Mode::Read => &self.rg,
            Mode::Write => &self.wg,
        }
    }

    fn deadline_word(&self, mode: Mode) -> &AtomicU64 {
        match mode {
            Mode::Read => &self.rd,
            Mode::Write => &self.wd,
        }
    }

    /// The direction's deadline, if set.
    pub(crate) fn deadline(&self, mode: Mode) -> Option<Instant> {
        match self.deadline_word(mode).load(Ordering::SeqCst) {
            0 => None,
            n => Some(epoch() + std::time::Duration::from_nanos(n)),
        }
    }

    /// Sets (or clears) a direction's deadline, and wakes its waiter so that it looks at the
    /// new one (Go's `poll_runtime_pollSetDeadline` wakes waiters of a past deadline; gort
    /// wakes them on any change, and they re-arm). Setting the deadline it has already is
    /// one atomic swap, no wake-up.
    pub(crate) fn set_deadline(&self, mode: Mode, d: Option<Instant>) {
        // Published by `unblock`'s update of the word (see `word_unblock`).
        let new = d.map_or(0, to_nanos);
        if self.deadline_word(mode).swap(new, Ordering::SeqCst) == new {
            return;
        }
        if let Some(g) = self.unblock(mode, false) {
            crate::sched::ready(g);
        }
    }

    /// Marks the socket closed and wakes both waiters with an error (Go's `pollUnblock`).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for mode in [Mode::Read, Mode::Write] {
            if let Some(g) = self.unblock(mode, false) {
                crate::sched::ready(g);
            }
        }
    }

    /// Records a hang-up seen by the poller (before it unblocks the waiters).
    pub(crate) fn set_hup(&self, mode: Mode) {
        let bit = match mode {
            Mode::Read => HUP_READ,
            Mode::Write => HUP_WRITE,
        };
        if self.hup.load(Ordering::Relaxed) & bit == 0 {
            self.hup.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Whether the poller saw a hang-up in `mode` (see `hup`).
    pub(crate) fn is_hup(&self, mode: Mode) -> bool {
        let bit = match mode {
            Mode::Read => HUP_READ,
            Mode::Write => HUP_WRITE,
        };
        self.hup.load(Ordering::SeqCst) & bit != 0
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Go's `netpollcheckerr`: closed, or the deadline (`extra`, the operation's own timeout,
    /// counts too) passed.
    pub(crate) fn check(&self, mode: Mode, extra: Option<Instant>) -> Result<(), WaitError> {
        if self.is_closing() {
            return Err(WaitError::Closed);
        }
        let d = match (self.deadline(mode), extra) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if d.is_some_and(|d| Instant::now() >= d) {
            return Err(WaitError::TimedOut);
        }
        Ok(())
    }

    /// Go's `netpollunblock`: readiness (`io`) or a close/deadline for `mode`. Returns the
    /// goroutine to ready, if one was parked; a task that waited is woken here.
    pub(crate) fn unblock(&self, mode: Mode, io: bool) -> Option<GRef> {
        let raw = word_unblock(self.word(mode), io)?;
        if is_task(raw) {
            wake_task(raw);
            return None;
        }
        // SAFETY: a stored waiter is a record the waiter stored with `GRef::into_raw` and that
        // nobody has taken since (the unblock's compare-and-swap took it).
        Some(unsafe { GRef::from_raw(raw as *const Goroutine) })
    }

    /// A goroutine about to wait in `mode` (it holds the direction's turnstile) finds the
    /// registration of a task that polled the direction before: it takes it and wakes the
    /// task, which polls again (and meets the turnstile), so the word has one waiter.
    fn evict_task(&self, w: &AtomicUsize) {
        let v = w.load(Ordering::Acquire);
        if is_task(v)
            && w.compare_exchange(v, NIL, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            wake_task(v);
        }
    }

    /// The async side of [`block`](Self::block), for a task that holds the direction's
    /// turnstile (`net/sock.rs`'s `poll_stream`): `Ready` when readiness is pending (consumed:
    /// try the I/O again) or a close or deadline came (the caller's check says which);
    /// otherwise stores `waker` in the word, for the next readiness, close or deadline to
    /// wake, and returns `Pending`. The protocol is `block`'s, with the task's record in
    /// place of the goroutine's; a registration of an earlier poll is replaced.
    pub(crate) fn poll_ready(&'static self, mode: Mode, waker: &Waker) -> Poll<()> {
        let w = self.word(mode);
        let v = w.load(Ordering::Acquire);
        if is_task(v)
            && w.compare_exchange(v, NIL, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // SAFETY: as in `free`: the compare-and-swap took the record.
            drop(unsafe { Box::from_raw((v & !TASK) as *mut Waker) });
            super::poller().waiting(-1);
        }
        if word_prepare(w) {
            return Poll::Ready(());
        }
        // After WAIT, as `block`: a close or deadline set before it is seen here.
        if self.check(mode, None).is_err() {
            word_finish(w);
            return Poll::Ready(());
        }
        let raw = Box::into_raw(Box::new(waker.clone())) as usize;
        debug_assert_eq!(raw & TASK, 0);
        let p = super::poller();
        p.waiting(1);
        if word_commit(w, raw | TASK) {
            // An M on its way to idle polls now that the count is above 0; from a plain thread
            // the runtimes may all be asleep already.
            crate::sched::wake_poller();
            return Poll::Pending;
        }
        // An unblock came between the announcement and the commit.
        // SAFETY: `raw` was leaked just above and never stored.
        drop(unsafe { Box::from_raw(raw as *mut Waker) });
        p.waiting(-1);
        word_finish(w);
        Poll::Ready(())
    }

    /// Whether `mode`'s word holds a task's registration (`poll_ready`): nothing (readiness,
    /// a close, a deadline, a goroutine's wait) has taken it out since it was stored.
    pub(crate) fn task_registered(&self, mode: Mode) -> bool {
        is_task(self.word(mode).load(Ordering::Acquire))
    }

    /// Forgets readiness that is pending in `mode`, before a task tries the I/O: what it
    /// announced arrived before the try, which sees it. (A task is woken by the edge and then
    /// reads without waiting in the word, so the `READY` stays behind; left there, the next
    /// poll's wait would consume it and pay for a second doomed system call.) An edge after
    /// this sets it again.
    pub(crate) fn clear_ready(&self, mode: Mode) {
        let w = self.word(mode);
        if w.load(Ordering::Relaxed) == READY {
            let _ = w.compare_exchange(READY, NIL, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Arms the direction's deadline timer for a task that registered (`poll_ready`), on the
    /// calling goroutine's or entered thread's runtime; `None` without a deadline or a
    /// runtime (a plain thread: the deadline is then only checked when the task polls).
    pub(crate) fn arm_for_task(&'static self, mode: Mode) -> Option<Armed> {
        let d = self.deadline(mode)?;
        crate::sched::current_shared()?;
        Some(self.timer(mode).arm(d))
    }

    /// Go's `netpollblock` for a goroutine: parks until readiness, a close or the deadline.
    /// Returns `true` on readiness (retry the I/O), `false` otherwise (look at `check`).
    #[track_caller]
    pub(crate) fn block(&'static self, mode: Mode, extra: Option<Instant>) -> bool {
        let w = self.word(mode);
        self.evict_task(w);
        if word_prepare(w) {
            return true;
        }
        // Flags are set before a close or deadline unblocks, and read after WAIT: neither can
        // slip between.
        if self.check(mode, extra).is_ok() {
            let deadline = match (self.deadline(mode), extra) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let armed = deadline.map(|d| self.timer(mode).arm(d));
            let p = super::poller();
            p.waiting(1);
            crate::sched::park(WaitReason::IoWait, move |g: GRef| {
                let raw = GRef::into_raw(g) as usize;
                if word_commit(w, raw) {
                    None
                } else {
                    // Readiness, a close or a deadline came first: resume at once.
                    // SAFETY: `raw` came from `GRef::into_raw` just above and was not stored.
                    Some(unsafe { GRef::from_raw(raw as *const Goroutine) })
                }
            });
            p.waiting(-1);
            if let Some(a) = armed {
                a.disarm();
            }
        }
        word_finish(w)
    }

    fn timer(&self, mode: Mode) -> &NetTimer {
        match mode {
            Mode::Read => &self.rtimer,
            Mode::Write => &self.wtimer,
        }
    }
}

/// A direction's deadline timer: armed on the waiting goroutine's runtime while it waits with
/// a deadline, fired by the runtime's timers (its `TimerFunc`), disarmed when the
/// wait ends (a stale heap entry is garbage the heaps collect).
pub(crate) struct NetTimer {
    pd: AtomicUsize,
    mode: Mode,
    /// The armed generation, or `u64::MAX`.
    armed: AtomicU64,
    next: AtomicU64,
}

/// An armed deadline: where its heap entry lies.
pub(crate) struct Armed {
    timer: &'static NetTimer,
    shared: Arc<crate::sched::Shared>,
    p: usize,
}

impl NetTimer {
    fn new(mode: Mode) -> NetTimer {
        NetTimer {
            pd: AtomicUsize::new(0),
            mode,
            armed: AtomicU64::new(u64::MAX),
            next: AtomicU64::new(0),
        }
    }

    fn arm(&'static self, d: Instant) -> Armed {
        let gen = self.next.fetch_add(1, Ordering::Relaxed);
        self.armed.store(gen, Ordering::Release);
        let shared = crate::sched::current_shared()
            .unwrap_or_else(|| crate::panic::throw("netpoll: a goroutine outside a runtime"));
        let when = crate::sched::timers::nanos_since(shared.epoch, d);
        let p = crate::sched::add_timer(&shared, when, Fire::Call(Target::Static(self), gen));
        Armed {
            timer: self,
            shared,
            p,
        }
    }
}

impl TimerFunc for NetTimer {
    /// Whether the heap entry of generation `gen` is the live one.
    fn is_armed(&self, gen: u64) -> bool {
        self.armed.load(Ordering::Acquire) == gen
    }

    /// A due deadline of generation `gen` (runs on whatever thread runs the timers).
    fn fire(&self, _: &Arc<Shared>, gen: u64, _: &Target) {
        if !self.is_armed(gen) {
            return;
        }
        // SAFETY: `pd` was set to the leaked descriptor that owns this timer.
        let pd = unsafe { &*(self.pd.load(Ordering::Relaxed) as *const PollDesc) };
        if let Some(g) = pd.unblock(self.mode, false) {
            crate::sched::ready(g);
        }
    }
}

/// Wakes the task whose registration `raw` an unblock or an eviction took.
fn wake_task(raw: usize) {
    // SAFETY: a task record is a `Box<Waker>` leaked by `poll_ready`, owned by the word until
    // taken: the caller's compare-and-swap took it.
    let w = unsafe { Box::from_raw((raw & !TASK) as *mut Waker) };
    super::poller().waiting(-1);
    w.wake();
}

impl Armed {
    pub(crate) fn disarm(self) {
        self.timer.armed.store(u64::MAX, Ordering::Release);
        self.shared.procs[self.p].timers.note_stale();
    }
}

/// A plain thread's wait (no goroutine to park): `poll(2)` on the descriptor until it is ready
/// in `mode`, or the deadline. Returns `false` on timeout.
pub(crate) fn wait_thread(fd: i32, mode: Mode, deadline: Option<Instant>) -> bool {
    let events = match mode {
        Mode::Read => libc::POLLIN,
        Mode::Write => libc::POLLOUT,
    };
    loop {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if n > 0 {
            return true;
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return true; // let the I/O call report the error
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The readiness-before-park race: a waiter announces WAIT, checks nothing is pending, and
    //! "parks" (a thread signal stands in for the goroutine park; the commit runs before it
    //! sleeps, as the park function runs after the switch); the poller delivers readiness at
    //! any moment. In every interleaving the waiter wakes and sees readiness (loom reports a
    //! deadlock if a wake-up is lost).
    use super::*;
    use crate::sched::park::ThreadSignal;
    use loom::sync::Arc;

    #[test]
    fn loom_readiness_is_never_lost() {
        loom::model(|| {
            let w = Arc::new(AtomicUsize::new(NIL));
            let sig = std::sync::Arc::new(ThreadSignal::new());
            // The "record" the waiter stores: any value above WAIT.
            const ME: usize = 0x1000;
            let (w2, s2) = (w.clone(), sig.clone());
            let poller = loom::thread::spawn(move || {
                if let Some(raw) = word_unblock(&w2, true) {
                    assert_eq!(raw, ME);
                    s2.notify();
                }
            });
            let ready = if word_prepare(&w) {
                true
            } else {
                if word_commit(&w, ME) {
                    sig.wait();
                }
                word_finish(&w)
            };
            assert!(ready, "the waiter saw the readiness");
            poller.join().unwrap();
        });
    }

    /// Two goroutines wait in one direction, taking turns under the direction's turnstile
    /// (`net/sock.rs`; a loom mutex stands in for it); two connections arrive behind a single
    /// edge. Whoever holds the turnstile tries before it waits, so the connection the edge
    /// announced but the first holder left is found by the second: both accept, in every
    /// interleaving (a waiter left asleep is a deadlock loom reports), and the word never has
    /// two waiters (`word_prepare` would throw).
    #[test]
    fn loom_one_edge_serves_two_queued_waiters() {
        use loom::sync::atomic::AtomicUsize as Backlog;
        loom::model(|| {
            let w = Arc::new(AtomicUsize::new(NIL));
            let backlog = Arc::new(Backlog::new(0));
            let turn = Arc::new(loom::sync::Mutex::new(()));
            let sigs = std::sync::Arc::new([ThreadSignal::new(), ThreadSignal::new()]);
            const ME: usize = 0x1000;
            let accept = {
                let (w, backlog, turn, sigs) =
                    (w.clone(), backlog.clone(), turn.clone(), sigs.clone());
                move |i: usize| {
                    let _turn = turn.lock().unwrap();
                    loop {
                        // The try (an `accept` that may find the backlog empty).
                        let n = backlog.load(Ordering::SeqCst);
                        if n > 0
                            && backlog
                                .compare_exchange(n, n - 1, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok()
                        {
                            return;
                        }
                        if word_prepare(&w) {
                            continue;
                        }
                        if word_commit(&w, ME + i) {
                            sigs[i].wait();
                        }
                        let _ = word_finish(&w);
                    }
                }
            };
            let poller = {
                let (w, backlog, sigs) = (w.clone(), backlog.clone(), sigs.clone());
                loom::thread::spawn(move || {
                    // The kernel queues both connections, then sends one edge.
                    backlog.fetch_add(2, Ordering::SeqCst);
                    if let Some(raw) = word_unblock(&w, true) {
                        sigs[raw - ME].notify();
                    }
                })
            };
            let other = {
                let accept = accept.clone();
                loom::thread::spawn(move || accept(1))
            };
            accept(0);
            other.join().unwrap();
            poller.join().unwrap();
            assert_eq!(backlog.load(Ordering::SeqCst), 0);
        });
    }

    /// A task polls again while its registration is in the word (a spurious wake): it takes
    /// the registration back and registers anew, while readiness arrives at any moment. The
    /// readiness is never lost: the new poll sees it, or the new registration is woken
    /// (`poll_ready`'s steps, with values for the records).
    #[test]
    fn loom_a_task_reregistering_never_loses_readiness() {
        loom::model(|| {
            const OLD: usize = 0x1000 | TASK;
            const NEW: usize = 0x2000 | TASK;
            let w = Arc::new(AtomicUsize::new(OLD));
            let sig = std::sync::Arc::new(ThreadSignal::new());
            let (w2, s2) = (w.clone(), sig.clone());
            let poller = loom::thread::spawn(move || match word_unblock(&w2, true) {
                Some(NEW) => s2.notify(),
                Some(r) => assert_eq!(r, OLD), // the old waker: a spurious wake only
                None => {}
            });
            let v = w.load(Ordering::Acquire);
            if is_task(v) {
                let _ = w.compare_exchange(v, NIL, Ordering::AcqRel, Ordering::Acquire);
            }
            let ready = if word_prepare(&w) {
                true
            } else if word_commit(&w, NEW) {
                sig.wait();
                true
            } else {
                word_finish(&w)
            };
            assert!(ready, "the task saw the readiness");
            poller.join().unwrap();
        });
    }

    #[test]
    fn loom_close_wakes_a_waiter() {
        loom::model(|| {
            let w = Arc::new(AtomicUsize::new(NIL));
            let closing = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let sig = std::sync::Arc::new(ThreadSignal::new());
            const ME: usize = 0x1000;
            let (w2, c2, s2) = (w.clone(), closing.clone(), sig.clone());
            let closer = loom::thread::spawn(move || {
                c2.store(true, Ordering::SeqCst);
                if let Some(raw) = word_unblock(&w2, false) {
                    assert_eq!(raw, ME);
                    s2.notify();
                }
            });
            if !word_prepare(&w) && !closing.load(Ordering::SeqCst) && word_commit(&w, ME) {
                sig.wait();
            }
            let _ = word_finish(&w);
            closer.join().unwrap();
        });
    }
}
