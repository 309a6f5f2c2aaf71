//! The network poller (Go's `netpoll.go`, `netpoll_epoll.go`): goroutines that wait for a
//! socket park, and the poller readies them when the kernel says the socket is ready.
//!
//! # Design
//!
//! One epoll instance for the process (registrations through mio, edge-triggered; an eventfd
//! of gort's own, level-triggered, interrupts a blocked poll), shared by every runtime. `epoll_wait` itself
//! is called directly, with a buffer per call and no lock, so that any M can poll without
//! blocking while another M is blocked in the poll. Each socket has a
//! [`PollDesc`] (Go's `pollDesc`): one reader and one writer wait on it at once, each with a
//! deadline; closing it wakes both with an error. Any number of goroutines may use a direction:
//! they take turns under the socket's turnstile for it (`net/sock.rs`, Go's `fdMutex`), and the
//! holder is the one that waits here.
//!
//! The poller is called from the schedule loop, as Go does:
//!
//! 1. `find_runnable`, out of local and global work and before stealing, polls without
//!    blocking (if goroutines or tasks wait on sockets, even while another M is blocked in
//!    the poll: each edge goes to one caller);
//! 2. an M going idle blocks in the poll instead of on its note if no other M is (Go: the
//!    first M to find nothing), with the earliest timer
//!    as its timeout; whoever hands it a P (or adds an earlier timer) interrupts the poll;
//! 3. sysmon polls when nobody has for 10 ms.
//!
//! Readied goroutines go to the poller's P (a batch, from `find_runnable`) or to their
//! runtime's global queue; goroutines of another runtime go to theirs.
//!
//! # The no-lost-wake-up protocol (Go's `netpollblock` / `netpollunblock`)
//!
//! Each direction of a `PollDesc` is a word: `NIL`, `READY` (an edge arrived that nobody has
//! consumed), `WAIT` (a goroutine is about to park), or the parked goroutine's record.
//!
//! ```text
//!  waiter (I/O returned WouldBlock)          poller (readiness) / close / deadline
//!  CAS READY -> NIL: ready, retry the I/O    (close / deadline: set the flag first)
//!  CAS NIL -> WAIT                           loop { old = word
//!  check closing / deadline                    new = readiness ? READY
//!  park; after the switch:                           : (old is READY ? READY : NIL)
//!    CAS WAIT -> g  (fails: woken already,     CAS old -> new   (always: even NIL -> NIL)
//!                    resume at once)           old was g: ready g }
//!  after waking: swap -> NIL; READY? retry
//! ```
//!
//! Readiness that arrives before the waiter commits turns `WAIT` into `READY`, so the commit's
//! compare-and-swap fails and the goroutine does not sleep; readiness after the commit finds the
//! record and readies it. A close or a deadline sets its flag, then updates the word with a
//! compare-and-swap even when the value stays: updates of one word are totally ordered, so
//! either the waiter's `NIL -> WAIT` comes later and reads (acquires) that update, and with it
//! the flag, or the unblock comes later and finds `WAIT` or the record. The same holds for the
//! sticky hang-up flag the poller sets before it unblocks. Two loom models check the protocol
//! (readiness racing the park; a close racing it).
//!
//! Invariants:
//! - at most one goroutine waits per direction (a second is a runtime error, `throw`);
//! - a record stored in a word is owned by the word (`GRef::into_raw`) until an unblock takes
//!   it;
//! - `PollDesc`s are never freed: a socket's is returned to a free list with a new generation,
//!   and events for an old generation (a socket closed while an event was in flight) are
//!   dropped.

pub(crate) mod desc;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) use desc::{Mode, PollDesc};

use crate::sched::GRef;

/// The token of the poller's own waker.
const WAKER: u64 = u64::MAX;

/// Events taken per `epoll_wait` (Go's `netpoll` takes 128).
const BATCH: usize = 128;

/// The process's poller.
pub(crate) struct Poller {
    /// Owns the epoll descriptor. Never polled through: `mio::Poll::poll` takes `&mut self`,
    /// one poller at a time, while Go's design (and gort's) has any M poll without blocking
    /// while another M is blocked in the poll. The registry is mio's.
    _poll: mio::Poll,
    epfd: RawFd,
    registry: mio::Registry,
    /// The eventfd that interrupts a blocked poll (Go's `netpollBreakRd`), registered
    /// level-triggered: every poller sees it until the blocked M resets it. (Edge-triggered,
    /// as `mio::Waker` registers it, a non-blocking poll on another M could take the one edge
    /// and leave the blocked M asleep, as a test of shutdown found.)
    wakefd: OwnedFd,
    /// Goroutines and tasks parked on a `PollDesc` (Go's `netpollWaiters`): while any are,
    /// deadlock detection stays away (`checkdead.rs`, rule 7) and the schedule loop polls.
    waiters: AtomicUsize,
    /// An M is blocked in the poll (it needs `interrupt` to wake up early).
    blocked: AtomicBool,
    /// When anyone last polled (nanoseconds since `epoch`).
    last_poll: AtomicU64,
    epoch: Instant,
}

static POLLER: OnceLock<&'static Poller> = OnceLock::new();

/// The poller, made on first use (a socket's registration) and registered with the scheduler
/// before anyone can park on it (`sched::poller`'s invariant).
pub(crate) fn poller() -> &'static Poller {
    POLLER.get_or_init(|| {
        let p: &'static Poller = Box::leak(Box::new(make()));
        crate::sched::poller::register(p);
        p
    })
}

fn make() -> Poller {
    {
        let poll = mio::Poll::new()
            .unwrap_or_else(|e| crate::panic::throw(&format!("netpoll: cannot create epoll: {e}")));
        let registry = poll.registry().try_clone().unwrap_or_else(|e| {
            crate::panic::throw(&format!("netpoll: cannot clone the registry: {e}"))
        });
        let epfd = poll.as_raw_fd();
        // SAFETY: eventfd has no memory preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            crate::panic::throw(&format!("netpoll: cannot create the waker: {e}"));
        }
        // SAFETY: `fd` was just made and is owned by nobody else.
        let wakefd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKER,
        };
        // SAFETY: `epfd` and `fd` are open; `ev` is a valid event.
        if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            let e = std::io::Error::last_os_error();
            crate::panic::throw(&format!("netpoll: cannot register the waker: {e}"));
        }
        Poller {
            epfd,
            _poll: poll,
            registry,
            wakefd,
            waiters: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            last_poll: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Poller {
    pub(crate) fn registry(&self) -> &mio::Registry {
        &self.registry
    }

    /// One `epoll_wait` with a buffer of its own (callers may poll at once), and Go's
    /// `netpollready` for each event.
    fn poll(&self, timeout_ms: i32) -> Vec<GRef> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        // SAFETY: `epfd` is the epoll descriptor `_poll` keeps open for the process's life;
        // `events` is a writable array of `BATCH` entries.
        let n =
            unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), BATCH as i32, timeout_ms) };
        if timeout_ms != 0 || n > 0 {
            self.last_poll
                .store(self.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                crate::panic::throw(&format!("netpoll: epoll_wait failed: {e}"));
            }
            return Vec::new();
        }
        let mut ready = Vec::new();
        for ev in &events[..n as usize] {
            let (flags, token) = (ev.events as i32, ev.u64);
            if token == WAKER {
                if timeout_ms != 0 {
                    // The blocked M resets the waker; non-blocking polls leave it for it.
                    let mut buf = 0u64;
                    // SAFETY: reads 8 bytes into a live u64 from the eventfd (EAGAIN if
                    // another M's reset came first).
                    unsafe {
                        libc::read(self.wakefd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8)
                    };
                }
                continue;
            }
            let Some(pd) = PollDesc::from_token(mio::Token(token as usize)) else {
                continue; // a socket closed since the event was queued
            };
            // Go's netpoll: errors and hang-ups wake both directions (the I/O call reports
            // what happened).
            let err = flags & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            if err || flags & libc::EPOLLRDHUP != 0 {
                pd.set_hup(Mode::Read);
            }
            if err {
                pd.set_hup(Mode::Write);
            }
            if err || flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) != 0 {
                ready.extend(pd.unblock(Mode::Read, true));
            }
            if err || flags & libc::EPOLLOUT != 0 {
                ready.extend(pd.unblock(Mode::Write, true));
            }
        }
        ready
    }

    pub(crate) fn waiting(&self, delta: isize) {
        if delta > 0 {
            self.waiters.fetch_add(1, Ordering::SeqCst);
        } else {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The scheduler's view of the poller (`sched::poller`): what the schedule loop, sysmon and
/// deadlock detection call.
impl crate::sched::poller::NetPoller for Poller {
    /// Goroutines and tasks parked on a `PollDesc`.
    fn waiters(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }

    /// Polls once without blocking (any M, any time, even while another M is blocked in the
    /// poll: each edge goes to one caller). Returns the goroutines it unblocked, for the caller
    /// to ready (Go's `netpoll(0)` returning a `gList`).
    fn poll_now(&self) -> Vec<GRef> {
        self.poll(0)
    }

    /// Whether an M is blocked in the poll (Go's `sched.lastpoll == 0`).
    fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }

    /// An M going idle: becomes the one M blocked in the poll, if nobody is; `false` if
    /// another M already is.
    fn try_block(&self) -> bool {
        self.blocked
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Blocks in the poll until an event, the `timeout`, or `interrupt`; returns the goroutines it
    /// unblocked. Call after `try_block` succeeded; ends the blocking role.
    fn poll_blocking(&self, timeout: Option<Duration>) -> Vec<GRef> {
        let ms = match timeout {
            None => -1,
            // Rounded up: waking before the timer is due would only make the M sleep again.
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        let ready = self.poll(ms);
        self.blocked.store(false, Ordering::SeqCst);
        ready
    }

    /// Interrupts a blocked poll (Go's `netpollBreak`).
    fn interrupt(&self) {
        if self.blocked.load(Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to the eventfd. EAGAIN (the counter is
            // full) means it is signalled already.
            unsafe { libc::write(self.wakefd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Time since anyone last polled (sysmon polls after 10 ms).
    fn since_last_poll(&self) -> Duration {
        let now = self.epoch.elapsed().as_nanos() as u64;
        Duration::from_nanos(now.saturating_sub(self.last_poll.load(Ordering::Relaxed)))
    }
}
