//! One registered socket: the mio source, its poll descriptor, and the loop every blocking
//! operation runs (try; on `WouldBlock` wait for readiness, a deadline or a close; try again).
//!
//! # Many goroutines on one direction (Go's `fdMutex`)
//!
//! A poll descriptor has one waiter word per direction (`netpoll/desc.rs`). Any number of
//! goroutines may read, write, accept or receive on one socket at once (the N-acceptor
//! server, several readers of one UDP socket): each direction's loop runs under a **turnstile**,
//! a [`crate::sync::Mutex`] (Go's `fd.readLock` / `fd.writeLock`). The holder tries the
//! operation and, on `WouldBlock`, is the one goroutine waiting in the word; the others wait on
//! the turnstile (`[semacquire]` in a dump, as in Go), queued in order. Invariants:
//! - at most one goroutine per direction is inside `run_locked`, so the word never has two
//!   waiters;
//! - a holder **tries the operation before it waits**: readiness that an earlier holder's edge
//!   announced but did not use up (two connections behind one edge, say) is found by the next
//!   holder's try, so it is never lost; edge-triggered readiness wakes one waiter, never a herd;
//! - a holder leaves the turnstile only when its operation ended (done, failed, closed, timed
//!   out), waking the next waiter, which tries in its turn; a close wakes the holder, which
//!   fails, and then each waiter in turn finds the socket closed.
//!
//! A waiter's own timeout or deadline is looked at when it holds the turnstile (Go: a deadline
//! wakes only the holder, the others fail as they get their turn; they share its deadline).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::netpoll::desc::{self, WaitError};
use crate::netpoll::{Mode, PollDesc};
use crate::sched::timers::{Fire, Target};
use crate::sync::Mutex;

/// A socket registered with the poller, shared by the handles of one socket (`try_clone`).
pub(crate) struct Sock<S: mio::event::Source + AsRawFd> {
    io: Option<S>,
    pd: &'static PollDesc,
    /// `std`'s per-operation timeouts, in nanoseconds (0: none).
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// `set_nonblocking(true)`: operations return `WouldBlock` instead of waiting.
    nonblocking: AtomicBool,
    /// Per direction: the last stream read came back short (the receive buffer was drained)
    /// or the last write did (the send buffer was full), so the next operation would find
    /// nothing and fail with `WouldBlock`: it waits for an edge first instead of paying for
    /// that system call (tokio clears its readiness the same way). An edge for anything that
    /// arrives after the drain is never lost: it is in the descriptor's word (`READY`) or it
    /// wakes the waiter. What arrived before the drain but is not data (the peer's FIN or
    /// reset, which a read reports only after the data) sends no new edge: the poller's
    /// sticky hang-up flag (`PollDesc::is_hup`) turns the shortcut off.
    read_drained: AtomicBool,
    write_drained: AtomicBool,
    /// One turnstile per direction (see the module docs). What it guards: the waker of the
    /// task that registered last in the direction (`poll_stream`), so that the task's next poll can
    /// tell that its registration still stands and skip a system call that would fail.
    read_turn: Mutex<Option<std::task::Waker>>,
    write_turn: Mutex<Option<std::task::Waker>>,
    /// The deadline timers armed for a task that waits in each direction (`poll_stream`),
    /// disarmed by its next poll or the socket's drop. Touched by the turnstile's holder.
    task_deadlines: parking_lot::Mutex<[Option<desc::Armed>; 2]>,
    /// Whether either slot of `task_deadlines` holds a timer (a poll without one skips the
    /// lock). Written by the turnstiles' holders, under the lock.
    task_armed: AtomicBool,
}

/// Go's `ErrNetClosing` text.
fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "use of closed network connection",
    )
}

/// Go's `i/o timeout` text.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o timeout")
}

impl<S: mio::event::Source + AsRawFd> Sock<S> {
    /// Registers `io` (non-blocking already) with the poller, edge-triggered, for both
    /// directions at once (Go registers each socket once, at open).
    pub(crate) fn new(mut io: S) -> io::Result<Sock<S>> {
        let pd = PollDesc::alloc();
        if let Err(e) = crate::netpoll::poller().registry().register(
            &mut io,
            pd.token(),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        ) {
            pd.free();
            return Err(e);
        }
        Ok(Sock {
            io: Some(io),
            pd,
            read_timeout: AtomicU64::new(0),
            write_timeout: AtomicU64::new(0),
            nonblocking: AtomicBool::new(false),
            read_drained: AtomicBool::new(false),
            write_drained: AtomicBool::new(false),
            read_turn: Mutex::new(None),
            write_turn: Mutex::new(None),
            task_deadlines: parking_lot::Mutex::new([None, None]),
            task_armed: AtomicBool::new(false),
        })
    }

    /// The mio source.
    pub(crate) fn io(&self) -> &S {
        match &self.io {
            Some(io) => io,
            None => unreachable!("a socket has its source until it is taken apart"),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.io().as_raw_fd()
    }

    /// Runs `f` until it does not return `WouldBlock`, waiting for readiness in `mode` between
    /// tries: the goroutine parks on the poller, a plain thread blocks in `poll(2)`. Fails with
    /// `TimedOut` past the direction's deadline or the operation's timeout, and with
    /// `NotConnected` once the socket is closed.
    #[track_caller]
    pub(crate) fn run<R>(&self, mode: Mode, f: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        self.run_until(mode, self.timeout_deadline(mode), f)
    }

    /// The direction's turnstile (module docs).
    fn turnstile(&self, mode: Mode) -> &Mutex<Option<std::task::Waker>> {
        match mode {
            Mode::Read => &self.read_turn,
            Mode::Write => &self.write_turn,
        }
    }

    /// `run` for a stream read or write of `len` bytes, returning how many moved: after a short
    /// one, the next operation in the same direction waits for readiness before it tries.
    #[track_caller]
    pub(crate) fn run_stream(
        &self,
        mode: Mode,
        len: usize,
        f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if len == 0 {
            // Go's `FD.Read` and `FD.Write` on an empty buffer: nothing to wait for. A read
            // returns 0 at once (only a closed socket fails it); a write checks the deadline
            // too, then writes nothing. Neither waits for readiness, which may never come.
            return match mode {
                Mode::Read if self.pd.is_closing() => Err(closed()),
                Mode::Read => Ok(0),
                Mode::Write => self.check(mode, None).map(|()| 0),
            };
        }
        let op_deadline = self.timeout_deadline(mode);
        let _turn = self.take_turn(mode)?;
        let drained = self.drained(mode);
        if drained.load(Ordering::Relaxed)
            && !self.nonblocking.load(Ordering::Relaxed)
            && !self.pd.is_hup(mode)
            && crate::sched::may_park()
        {
            drained.store(false, Ordering::Relaxed);
            self.check(mode, op_deadline)?;
            // Consumes an edge that came meanwhile (returns at once), or parks for one, a
            // close or a deadline; either way the loop below tries (and checks) next.
            let _ = self.pd.block(mode, op_deadline);
        }
        let r = self.run_locked(mode, op_deadline, f);
        if let Ok(n) = r {
            if n > 0 && n < len {
                drained.store(true, Ordering::Relaxed);
            }
        }
        r
    }

    /// A stream socket's `write` / `write_vectored` (TCP and Unix): `run_stream` over
    /// `send_nosignal`, so no write raises `SIGPIPE`.
    #[track_caller]
    pub(crate) fn write_stream(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.run_stream(Mode::Write, len, |s| send_nosignal(s.as_raw_fd(), bufs))
    }

    fn drained(&self, mode: Mode) -> &AtomicBool {
        match mode {
            Mode::Read => &self.read_drained,
            Mode::Write => &self.write_drained,
        }
    }

    /// Forgets that a direction was drained: something other than a stream read or write may
    /// have consumed its edge or left data behind (`peek`, every `run_until`; `shutdown`).
    pub(crate) fn undrain(&self, mode: Mode) {
        let d = self.drained(mode);
        if d.load(Ordering::Relaxed) {
            d.store(false, Ordering::Relaxed);
        }
    }

    fn timeout_deadline(&self, mode: Mode) -> Option<Instant> {
        let timeout = match mode {
            Mode::Read => &self.read_timeout,
            Mode::Write => &self.write_timeout,
        }
        .load(Ordering::Relaxed);
        (timeout != 0).then(|| Instant::now() + Duration::from_nanos(timeout))
    }

    /// `run` with the operation's own deadline (`connect_timeout`) instead of the socket's
    /// timeout.
    #[track_caller]
    pub(crate) fn run_until<R>(
        &self,
        mode: Mode,
        op_deadline: Option<Instant>,
        f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let _turn = self.take_turn(mode)?;
        self.run_locked(mode, op_deadline, f)
    }

    /// The direction's turnstile, waiting for it; in non-blocking mode an operation that would
    /// wait for it fails with `WouldBlock` instead (another goroutine is in the direction).
    #[track_caller]
    fn take_turn(
        &self,
        mode: Mode,
    ) -> io::Result<crate::sync::MutexGuard<'_, Option<std::task::Waker>>> {
        if self.nonblocking.load(Ordering::Relaxed) {
            return self
                .turnstile(mode)
                .try_lock()
                .ok_or_else(|| io::ErrorKind::WouldBlock.into());
        }
        Ok(self.turnstile(mode).lock())
    }

    /// The loop of `run_until`, by the holder of the direction's turnstile.
    #[track_caller]
    fn run_locked<R>(
        &self,
        mode: Mode,
        op_deadline: Option<Instant>,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.undrain(mode);
        loop {
            self.check(mode, op_deadline)?;
            match f(self.io()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.nonblocking.load(Ordering::Relaxed) {
                        return Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A close that came between the check and the call: the call failed on a
                // shut-down socket (an `accept` with EINVAL). Every operation on a closed
                // socket fails with the one documented error (Go's "use of closed network
                // connection").
                Err(_) if self.pd.is_closing() => return Err(closed()),
                r => return r,
            }
            if crate::sched::may_park() {
                // `false`: a close or a deadline (the loop's check says which), or a spurious
                // wake-up (a deadline was changed): look again.
                let _ = self.pd.block(mode, op_deadline);
            } else {
                // A plain thread, or a goroutine unwinding a panic (`sched::may_park`), which
                // waits as a blocking section.
                let deadline = match (self.pd.deadline(mode), op_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let _ = crate::sched::syscall::blocking(|| {
                    desc::wait_thread(self.fd(), mode, deadline)
                });
            }
        }
    }

    /// The async side of `run_stream` (a future's poll, `Context` instead of a parked
    /// goroutine) for a stream read or write of `len` bytes (not 0): tries `f` once under the
    /// direction's turnstile and, on `WouldBlock`, leaves the task's waker in the poll
    /// descriptor, for readiness, a close or the socket's deadline to wake
    /// (`PollDesc::poll_ready`), and returns `Pending`.
    ///
    /// Two shortcuts spare the system calls that would fail (tokio's cached readiness does the
    /// same; hyper polls its socket whenever anything wakes its connection, and each poll paid
    /// for a failing `recv`): a poll that finds its task's registration still in the word
    /// (nothing woke it) returns `Pending` at once; and after a short read or write (the
    /// buffer was drained or filled: `run_stream`'s `drained`) the next poll waits for an edge
    /// before it tries, consuming one that came meanwhile.
    ///
    /// The turnstile is only tried: a task never waits for a goroutine that holds it (a
    /// blocking call in the same direction) but polls again a millisecond later. Sharing a
    /// direction between blocking calls and a task is allowed, not efficient. The socket's
    /// `std`-style timeouts (`set_read_timeout`) are for blocking calls; a task's operations
    /// keep to the deadlines (`set_read_deadline`), which a task's runtime timer enforces
    /// (on a plain thread outside any runtime, only when the task polls).
    pub(crate) fn poll_stream(
        &self,
        mode: Mode,
        cx: &mut std::task::Context<'_>,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        let Some(mut turn) = self.turnstile(mode).try_lock() else {
            retry_soon(cx.waker());
            return Poll::Pending;
        };
        // The task's registration of its last poll still stands in the descriptor's word: no
        // readiness, close or deadline has come since its I/O failed with `WouldBlock` (each
        // of them takes the registration out of the word, and wakes it), so the I/O would
        // fail again. Not with a deadline: the slow path re-arms its timer, and on a plain
        // thread (no runtime to arm one) it is only checked when the task polls.
        if !self.task_armed.load(Ordering::Relaxed)
            && self.pd.deadline(mode).is_none()
            && self.pd.task_registered(mode)
            && turn.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let slot = match mode {
            Mode::Read => 0,
            Mode::Write => 1,
        };
        if self.task_armed.load(Ordering::Relaxed) {
            let mut armed = self.task_deadlines.lock();
            if let Some(a) = armed[slot].take() {
                a.disarm();
            }
            self.task_armed
                .store(armed.iter().any(Option::is_some), Ordering::Relaxed);
        }
        // Leaves the task's waker in the word; `false` if readiness (or a close or deadline)
        // came first: try again.
        let register = |turn: &mut Option<std::task::Waker>| -> io::Result<bool> {
            if !crate::sched::poller_is_served() {
                return Err(io::Error::other(
                    "gort: async I/O on a gort socket needs a running gort runtime in the \
                     process (its threads poll the sockets)",
                ));
            }
            if self.pd.poll_ready(mode, cx.waker()).is_ready() {
                return Ok(false);
            }
            if !turn.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *turn = Some(cx.waker().clone());
            }
            if let Some(a) = self.pd.arm_for_task(mode) {
                self.task_deadlines.lock()[slot] = Some(a);
                self.task_armed.store(true, Ordering::Relaxed);
            }
            Ok(true)
        };
        let drained = self.drained(mode);
        if drained.load(Ordering::Relaxed) && !self.pd.is_hup(mode) {
            // The last operation drained the buffer (or filled it): wait for an edge first.
            // One that came since is in the word (`READY`): `poll_ready` consumes it.
            drained.store(false, Ordering::Relaxed);
            if let Err(e) = self.check(mode, None) {
                return Poll::Ready(Err(e));
            }
            match register(&mut turn) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(true) => return Poll::Pending,
                Ok(false) => {}
            }
        } else {
            self.undrain(mode);
            self.pd.clear_ready(mode);
        }
        loop {
            if let Err(e) = self.check(mode, None) {
                return Poll::Ready(Err(e));
            }
            match f(self.io()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if self.pd.is_closing() => return Poll::Ready(Err(closed())),
                Ok(n) => {
                    if n > 0 && n < len {
                        drained.store(true, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(n));
                }
                r => return Poll::Ready(r),
            }
            match register(&mut turn) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(true) => return Poll::Pending,
                Ok(false) => {}
            }
        }
    }

    /// `std`'s `set_nonblocking`: with `true`, operations that would wait return
    /// `WouldBlock` (the descriptor is non-blocking either way).
    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    fn check(&self, mode: Mode, op_deadline: Option<Instant>) -> io::Result<()> {
        match self.pd.check(mode, op_deadline) {
            Ok(()) => Ok(()),
            Err(WaitError::Closed) => Err(closed()),
            Err(WaitError::TimedOut) => Err(timed_out()),
        }
    }

    /// `std`'s `set_read_timeout` / `set_write_timeout`: `Some(0)` is refused, as in `std`.
    pub(crate) fn set_timeout(&self, mode: Mode, t: Option<Duration>) -> io::Result<()> {
        if t == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let nanos = t.map_or(0, |t| (t.as_nanos().min(u64::MAX as u128) as u64).max(1));
        match mode {
            Mode::Read => &self.read_timeout,
            Mode::Write => &self.write_timeout,
        }
        .store(nanos, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn timeout(&self, mode: Mode) -> Option<Duration> {
        match match mode {
            Mode::Read => &self.read_timeout,
            Mode::Write => &self.write_timeout,
        }
        .load(Ordering::Relaxed)
        {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Go's `SetReadDeadline` / `SetWriteDeadline`.
    pub(crate) fn set_deadline(&self, mode: Mode, d: Option<Instant>) {
        self.pd.set_deadline(mode, d);
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.pd.is_closing()
    }

    /// Go's `Close`: operations waiting on the socket fail at once, and so do later ones.
    /// The connection is shut down in both directions, so the peer sees it closed now (and a
    /// plain thread blocked in `poll(2)` wakes up); the descriptor itself is released with the
    /// last handle.
    pub(crate) fn close(&self) {
        self.pd.close();
        // (Set through `TcpStream::set_linger` or on the raw descriptor: asked each time.)
        if self.linger().ok() == Some(Some(Duration::ZERO)) {
            // `SO_LINGER` 0: Go's close sends a reset. The descriptor stays open until the
            // last handle goes, so abort the connection now: `connect` to `AF_UNSPEC`
            // disconnects a TCP socket with a reset, and wakes its waiters as a shutdown does.
            // SAFETY: an all-zero sockaddr with family AF_UNSPEC is valid for this call;
            // `fd` is open for as long as `self` is. Errors do not matter (the flag already
            // fails every operation); a socket that never connected has nothing to abort.
            unsafe {
                let mut a: libc::sockaddr = std::mem::zeroed();
                a.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
                libc::connect(
                    self.fd(),
                    &a,
                    std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
                );
            }
            return;
        }
        // SAFETY: `fd` is open for as long as `self` is (the source owns it). Errors
        // (ENOTCONN for a socket that never connected) are irrelevant: the flag already fails
        // every operation.
        unsafe { libc::shutdown(self.fd(), libc::SHUT_RDWR) };
    }

    /// `SO_LINGER`, Go's `SetLinger`: `None` turns it off (the default: close returns at
    /// once, the kernel sends what is left), `Some(d)` waits up to `d` (whole seconds) in the
    /// last close for unsent data; zero discards it and resets the connection, at `close`.
    pub(crate) fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let l = libc::linger {
            l_onoff: libc::c_int::from(linger.is_some()),
            l_linger: linger.map_or(0, |d| d.as_secs().min(i32::MAX as u64) as libc::c_int),
        };
        // SAFETY: a valid socket, and an option of the right size that lives across the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&l as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `SO_LINGER` (`set_linger`).
    pub(crate) fn linger(&self) -> io::Result<Option<Duration>> {
        let mut l = libc::linger {
            l_onoff: 0,
            l_linger: 0,
        };
        let mut len = std::mem::size_of::<libc::linger>() as libc::socklen_t;
        // SAFETY: a valid socket; `l` and `len` are valid for writes of the option's size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&mut l as *mut libc::linger).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((l.l_onoff != 0).then(|| Duration::from_secs(l.l_linger.max(0) as u64)))
    }

    /// Takes the source out, deregistered (`into_std`).
    pub(crate) fn into_inner(mut self) -> io::Result<S> {
        let mut io = self.io.take().expect("present until here");
        let r = crate::netpoll::poller().registry().deregister(&mut io);
        self.pd.free();
        r.map(|()| io)
    }
}

/// Wakes `waker` in a millisecond (a task that found a direction's turnstile held), on the
/// runtime of the calling goroutine or entered thread; elsewhere at once, after a yield.
fn retry_soon(waker: &std::task::Waker) {
    let armed = crate::sched::with_current_shared(|shared| {
        let t = std::sync::Arc::new(crate::sched::timers::TaskTimer::new(waker.clone()));
        let when = crate::sched::timers::deadline(shared.epoch, Duration::from_millis(1));
        crate::sched::add_timer(shared, when, Fire::Call(Target::Counted(t), 0));
    });
    if armed.is_none() {
        std::thread::yield_now();
        waker.wake_by_ref();
    }
}

impl<S: mio::event::Source + AsRawFd> Drop for Sock<S> {
    fn drop(&mut self) {
        for a in self.task_deadlines.get_mut().iter_mut() {
            if let Some(a) = a.take() {
                a.disarm();
            }
        }
        if let Some(mut io) = self.io.take() {
            let _ = crate::netpoll::poller().registry().deregister(&mut io);
            // Closing the descriptor (dropping `io`) after deregistering: a later event for it
            // carries the old generation and is dropped.
            drop(io);
            self.pd.free();
        }
    }
}

/// Writes `bufs` to the stream socket `fd` with `MSG_NOSIGNAL`: a peer that reset the
/// connection is an `EPIPE` error, never a `SIGPIPE` (which, at its default disposition, ends
/// the process; Go never lets a socket write raise it). std's `writev` (its `write_vectored`)
/// and its Unix streams' `write` raise it.
pub(crate) fn send_nosignal(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    const FLAGS: libc::c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    let n = if let [buf] = bufs {
        // One buffer: `send`, which the kernel takes with less copying than a `msghdr`.
        // SAFETY: `buf` is valid for reads of its length for the call.
        unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), FLAGS) }
    } else {
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // `IoSlice` is ABI-compatible with `iovec` on Unix (std guarantees it).
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
        // SAFETY: `msg` points at `bufs`, which outlive the call and which the kernel only
        // reads.
        unsafe { libc::sendmsg(fd, &msg, FLAGS) }
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
