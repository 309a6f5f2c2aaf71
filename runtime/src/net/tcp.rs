//! TCP: `std::net::TcpListener` and `TcpStream`, parking goroutines instead of threads.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sock::Sock;
use crate::netpoll::Mode;

/// A TCP server socket, as `std::net::TcpListener`; `accept` parks the goroutine until a
/// connection arrives.
///
/// Handles made by [`try_clone`](TcpListener::try_clone) share the socket:
/// [`close`](TcpListener::close) on any of them makes an `accept` waiting on another fail, as
/// Go's `Listener.Close` does.
///
/// ```
/// use gort::net::{TcpListener, TcpStream};
///
/// gort::run(|| {
///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     gort::go!(move || {
///         for conn in ln.incoming().take(2) {
///             drop(conn.unwrap()); // a real server would go!(handle(conn))
///         }
///     });
///     TcpStream::connect(addr).unwrap();
///     TcpStream::connect(addr).unwrap();
/// });
/// ```
pub struct TcpListener {
    sock: Arc<Sock<mio::net::TcpListener>>,
}

/// A TCP connection, as `std::net::TcpStream`; reads, writes and `connect` park the goroutine
/// until the socket is ready. `Read` and `Write` are implemented for `TcpStream` and
/// `&TcpStream`, so one goroutine may read while another writes.
///
/// ```
/// use std::io::{Read, Write};
/// use gort::net::{TcpListener, TcpStream};
///
/// gort::run(|| {
///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     gort::go!(move || {
///         let (mut c, _) = ln.accept().unwrap();
///         c.write_all(b"hi").unwrap();
///     });
///     let mut s = TcpStream::connect(addr).unwrap();
///     let mut got = String::new();
///     s.read_to_string(&mut got).unwrap(); // to end of stream: the server dropped its end
///     assert_eq!(got, "hi");
/// });
/// ```
pub struct TcpStream {
    sock: Arc<Sock<mio::net::TcpStream>>,
}

/// An iterator over a listener's connections ([`TcpListener::incoming`]); never ends.
///
/// ```
/// use gort::net::{TcpListener, TcpStream};
/// gort::run(|| {
///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     gort::go!(move || {
///         for _ in 0..3 {
///             TcpStream::connect(addr).unwrap();
///         }
///     });
///     let served = ln.incoming().take(3).filter(|c| c.is_ok()).count(); // Go: for { ln.Accept() }
///     assert_eq!(served, 3);
/// });
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

/// Go's listen backlog: the system's maximum (`net.core.somaxconn`), so that a burst of
/// connections is queued rather than dropped (`std` and mio use 128).
pub(super) fn max_backlog() -> i32 {
    static BACKLOG: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *BACKLOG.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(libc::SOMAXCONN)
    })
}

impl TcpListener {
    /// Binds a listener to `addr` (each resolved address in turn, as `std`), with the socket
    /// reusable at once (`SO_REUSEADDR`) and the system's maximum backlog, as Go does.
    ///
    /// ```
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     assert_ne!(ln.local_addr().unwrap().port(), 0);
    /// });
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        super::each_addr(addr, |a| {
            let ln = mio::net::TcpListener::bind(a)?;
            // SAFETY: a listening socket we own; listen() again only changes its backlog.
            if unsafe { libc::listen(ln.as_raw_fd(), max_backlog()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(TcpListener {
                sock: Arc::new(Sock::new(ln)?),
            })
        })
    }

    /// Wraps a listener from `std`, made non-blocking and registered with the poller.
    ///
    /// ```
    /// gort::run(|| {
    ///     let std_ln = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let ln = gort::net::TcpListener::from_std(std_ln).unwrap();
    ///     assert!(ln.local_addr().is_ok());
    /// });
    /// ```
    pub fn from_std(ln: std::net::TcpListener) -> io::Result<TcpListener> {
        ln.set_nonblocking(true)?;
        Ok(TcpListener {
            sock: Arc::new(Sock::new(mio::net::TcpListener::from_std(ln))?),
        })
    }

    /// The listener back as `std`'s, in blocking mode. Fails if other handles
    /// ([`try_clone`](TcpListener::try_clone)) share it.
    ///
    /// ```
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let std_ln = ln.into_std().unwrap();
    ///     assert!(std_ln.local_addr().is_ok());
    /// });
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let ln: std::net::TcpListener = sock.into_inner()?.into();
        ln.set_nonblocking(false)?;
        Ok(ln)
    }

    /// Waits for a connection: parks the goroutine until one arrives, the deadline passes
    /// (`TimedOut`), or the listener is closed (`NotConnected`). The connection's socket is
    /// registered with the poller, non-blocking and close-on-exec.
    ///
    /// ```
    /// use gort::net::{TcpListener, TcpStream};
    ///
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     let c = gort::spawn(move || TcpStream::connect(addr).unwrap().local_addr().unwrap());
    ///     let (_conn, peer) = ln.accept().unwrap();
    ///     assert_eq!(peer, c.join());
    /// });
    /// ```
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.sock.run(Mode::Read, |ln| ln.accept())?;
        Ok((TcpStream::from_mio(s)?, addr))
    }

    /// An iterator of `accept`'s connections (without the addresses), as `std`'s.
    ///
    /// ```
    /// use gort::net::{TcpListener, TcpStream};
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let client = TcpStream::connect(ln.local_addr().unwrap()).unwrap(); // in the backlog
    ///     let conn = ln.incoming().next().unwrap().unwrap();
    ///     assert_eq!(conn.peer_addr().unwrap(), client.local_addr().unwrap());
    /// });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = ln.local_addr().unwrap(); // Go: ln.Addr()
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // port 0 asked the system to pick one
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// ln.set_ttl(42).unwrap();
    /// assert_eq!(ln.ttl().unwrap(), 42);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.io().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// ln.set_ttl(7).unwrap();
    /// assert_eq!(ln.ttl().unwrap(), 7);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.io().ttl()
    }

    /// Takes the pending `SO_ERROR`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(ln.take_error().unwrap().is_none()); // no error pending
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// With `true`, `accept` returns `WouldBlock` instead of waiting, as `std`'s.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// ln.set_nonblocking(true).unwrap();
    /// let err = ln.accept().unwrap_err(); // nobody connects: no wait
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same listener (one descriptor, one registration; `std`
    /// duplicates the descriptor instead). Never fails; `io::Result` for `std`'s signature.
    ///
    /// ```
    /// use gort::net::{TcpListener, TcpStream};
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let ln2 = ln.try_clone().unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     assert_eq!(ln2.local_addr().unwrap(), addr); // the same socket
    ///     let acceptor = gort::spawn(move || ln2.accept().unwrap().1);
    ///     let client = TcpStream::connect(addr).unwrap();
    ///     assert_eq!(acceptor.join(), client.local_addr().unwrap());
    /// });
    /// ```
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Listener.Close`: an `accept` waiting on this listener (any handle) fails with
    /// `NotConnected` ("use of closed network connection"), and so does every later one.
    /// The port is released when the last handle is dropped.
    ///
    /// ```
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let ln2 = ln.try_clone().unwrap();
    ///     let waiter = gort::spawn(move || ln2.accept().map(|_| ()));
    ///     gort::time::sleep(std::time::Duration::from_millis(10));
    ///     ln.close();
    ///     let err = waiter.join().unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    /// });
    /// ```
    pub fn close(&self) {
        self.sock.close();
    }

    /// Go's `SetDeadline` for `accept`: past `deadline`, `accept` fails with `TimedOut`
    /// (`None` clears it). Changing it wakes a waiting `accept` to look at the new one.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     ln.set_deadline(Some(Instant::now() + Duration::from_millis(10))).unwrap();
    ///     let err = ln.accept().unwrap_err(); // nobody connects
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut); // Go: i/o timeout
    /// });
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        Ok(())
    }
}

impl<'a> Iterator for Incoming<'a> {
    type Item = io::Result<TcpStream>;

    #[track_caller]
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpStream {
    fn from_mio(s: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: Arc::new(Sock::new(s)?),
        })
    }

    /// Connects to `addr` (each resolved address in turn, as `std`): parks the goroutine
    /// until the connection is established or refused.
    ///
    /// ```
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap(), ln.local_addr().unwrap());
    /// });
    /// ```
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        // `each_addr` without its closure, which would hide the caller's line from dumps.
        let mut last = None;
        for a in super::resolve(addr)? {
            match TcpStream::connect_until(a, None) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(super::no_address(last))
    }

    /// Connects to `addr` until `ctx` is done (Go's `Dialer.DialContext`): the context's
    /// deadline bounds the connect, and cancelling it stops a connect in progress. A context
    /// done before the connect completes fails it with the context's error as the source
    /// (`TimedOut` for a deadline, `Interrupted` for a cancel; the text is Go's `context
    /// deadline exceeded` / `context canceled`); once connected, the stream no longer depends
    /// on the context.
    ///
    /// ```
    /// use gort::context;
    /// use gort::net::TcpStream;
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     let (ctx, cancel) = context::with_cancel(&context::background());
    ///     assert!(TcpStream::connect_context(&ctx, addr).is_ok());
    ///     cancel.cancel();
    ///     let e = TcpStream::connect_context(&ctx, addr).unwrap_err();
    ///     assert_eq!(e.to_string(), "context canceled");
    /// });
    /// ```
    #[track_caller]
    pub fn connect_context<A: ToSocketAddrs>(
        ctx: &crate::context::Context,
        addr: A,
    ) -> io::Result<TcpStream> {
        use crate::context::io_error;
        if let Some(e) = ctx.err() {
            return Err(io_error(e));
        }
        super::each_addr(addr, |a| {
            let s = TcpStream::from_mio(mio::net::TcpStream::connect(a)?)?;
            // The watch closes the socket if the context ends first; `settled` (under its
            // lock) keeps it from closing a stream the connect already returned.
            let settled = std::sync::Arc::new(parking_lot::Mutex::new(false));
            let watch = {
                let (sock, settled) = (s.sock.clone(), settled.clone());
                crate::context::watch(ctx, move || {
                    if !*settled.lock() {
                        sock.close();
                    }
                })
            };
            let r = s.wait_connected(ctx.deadline());
            *settled.lock() = true;
            drop(watch);
            match r {
                Ok(()) if !s.sock.is_closed() => Ok(s),
                _ => Err(match ctx.err() {
                    Some(e) => io_error(e),
                    None => r
                        .err()
                        .unwrap_or_else(|| io::ErrorKind::NotConnected.into()),
                }),
            }
        })
    }

    /// Connects to one address, failing with `TimedOut` after `timeout` (zero is refused,
    /// as in `std`).
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     assert!(gort::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok());
    /// });
    /// ```
    #[track_caller]
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_until(*addr, Instant::now().checked_add(timeout))
    }

    #[track_caller]
    fn connect_until(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        // Go's dialer: a connection to a local port nobody listens on can be made to itself
        // (the kernel picked the target port as the source port: TCP's simultaneous open),
        // and then reads back its own writes. Such a connection is closed and the dial tried
        // again, twice at most, as Go does.
        let mut tries = 0;
        loop {
            let s = TcpStream::connect_once(addr, deadline)?;
            let own = matches!((s.local_addr(), s.peer_addr()), (Ok(l), Ok(p)) if l == p);
            if !own || tries == 2 {
                return Ok(s);
            }
            tries += 1;
        }
    }

    #[track_caller]
    fn connect_once(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let s = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        s.wait_connected(deadline)?;
        Ok(s)
    }

    /// Waits for a non-blocking connect to finish: the connection is established when the
    /// socket turns writable; SO_ERROR says whether it failed, the peer address that it
    /// succeeded (Go's `connect` loop).
    #[track_caller]
    fn wait_connected(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.run_until(Mode::Write, deadline, |io| {
            if let Some(e) = io.take_error()? {
                return Err(e);
            }
            match io.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Wraps a connected stream from `std`, made non-blocking and registered with the poller.
    ///
    /// ```
    /// gort::run(|| {
    ///     let ln = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = std::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     let s = gort::net::TcpStream::from_std(s).unwrap();
    ///     assert!(s.peer_addr().is_ok());
    /// });
    /// ```
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(s))
    }

    /// The stream back as `std`'s, in blocking mode. Fails if other handles
    /// ([`try_clone`](TcpStream::try_clone)) share it.
    ///
    /// ```
    /// use gort::net::TcpStream;
    /// let ln = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// let std_s: std::net::TcpStream = s.into_std().unwrap(); // blocking again
    /// assert_eq!(std_s.peer_addr().unwrap(), ln.local_addr().unwrap());
    ///
    /// let s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// let _other = s.try_clone().unwrap();
    /// assert!(s.into_std().is_err()); // another handle shares it
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let s: std::net::TcpStream = sock.into_inner()?.into();
        s.set_nonblocking(false)?;
        Ok(s)
    }

    /// The remote address.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.peer_addr().unwrap(), ln.local_addr().unwrap()); // Go: conn.RemoteAddr()
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// let (_conn, peer) = ln.accept().unwrap();
    /// assert_eq!(s.local_addr().unwrap(), peer); // Go: conn.LocalAddr()
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// Shuts down the read half, the write half (the peer reads end of stream: a half-close)
    /// or both, as `std`'s. The socket stays open; see [`close`](TcpStream::close).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::Shutdown;
    /// use gort::net::{TcpListener, TcpStream};
    ///
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     gort::go!(move || {
    ///         let (mut c, _) = ln.accept().unwrap();
    ///         let mut req = Vec::new();
    ///         c.read_to_end(&mut req).unwrap(); // ends at the client's half-close
    ///         c.write_all(&req).unwrap();
    ///     });
    ///     let mut s = TcpStream::connect(addr).unwrap();
    ///     s.write_all(b"ping").unwrap();
    ///     s.shutdown(Shutdown::Write).unwrap();
    ///     let mut back = Vec::new();
    ///     s.read_to_end(&mut back).unwrap();
    ///     assert_eq!(back, b"ping");
    /// });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.undrain(Mode::Read);
        self.sock.undrain(Mode::Write);
        self.sock.io().shutdown(how)
    }

    /// Sets `SO_LINGER` (Go's `SetLinger`). `None`, the default: `close` and the last drop
    /// return at once and the kernel sends what is left. `Some(Duration::ZERO)`: unsent data is
    /// discarded and `close` resets the connection (the peer's read fails with
    /// `ConnectionReset`). `Some(d)`: the last drop of the socket waits up to `d` (whole
    /// seconds) for unsent data.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut c = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     let (s, _) = ln.accept().unwrap();
    ///     s.set_linger(Some(Duration::ZERO)).unwrap();
    ///     assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
    ///     s.close(); // a reset, not an end of stream
    ///     let e = c.read(&mut [0; 8]).unwrap_err();
    ///     assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    /// });
    /// ```
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.sock.set_linger(linger)
    }

    /// `SO_LINGER` (`set_linger`).
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.sock.linger()
    }

    /// Sets `TCP_NODELAY` (Go sets it on every connection; `std` and gort leave the system's
    /// default, off, as `std` does).
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_nodelay(true).unwrap(); // Go's default
    /// assert!(s.nodelay().unwrap());
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.sock.io().set_nodelay(nodelay)
    }

    /// `TCP_NODELAY`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert!(!s.nodelay().unwrap()); // the system's default
    /// s.set_nodelay(true).unwrap();
    /// assert!(s.nodelay().unwrap());
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.io().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_ttl(42).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 42);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.io().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_ttl(7).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 7);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.io().ttl()
    }

    /// Takes the pending `SO_ERROR`.
    ///
    /// ```
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert!(s.take_error().unwrap().is_none()); // no error pending
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// Reads without consuming: parks until data, end of stream, or an error.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use gort::net::{TcpListener, TcpStream};
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut client = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     let (mut server, _) = ln.accept().unwrap();
    ///     client.write_all(b"GET").unwrap();
    ///     let mut first = [0; 1];
    ///     assert_eq!(server.peek(&mut first).unwrap(), 1);
    ///     let mut all = [0; 3];
    ///     server.read_exact(&mut all).unwrap(); // the peeked byte is still there
    ///     assert_eq!((&first, &all), (b"G", b"GET"));
    /// });
    /// ```
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.run(Mode::Read, |s| s.peek(buf))
    }

    /// `std`'s per-operation read timeout: a read that waits longer fails with `TimedOut`
    /// (`std` says `WouldBlock` on Linux; gort says what happened). `Some(ZERO)` is refused.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     let err = s.read(&mut [0; 8]).unwrap_err(); // nobody writes
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Mode::Read, dur)
    }

    /// `std`'s per-operation write timeout; see `set_read_timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    /// assert!(s.set_write_timeout(Some(Duration::ZERO)).is_err()); // refused, as in std
    /// ```
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Mode::Write, dur)
    }

    /// The read timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.read_timeout().unwrap(), None); // none by default
    /// s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    /// assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Read))
    }

    /// The write timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), None); // none by default
    /// s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(3)));
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Write))
    }

    /// Go's `SetDeadline`: both directions' deadlines at once.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::{Duration, Instant};
    ///
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     s.set_deadline(Some(Instant::now() + Duration::from_millis(20))).unwrap();
    ///     let err = s.read(&mut [0; 8]).unwrap_err(); // nobody writes
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// Go's `SetReadDeadline`: an absolute time after which reads (and a read waiting now)
    /// fail with `TimedOut`; `None` clears it. Unlike a timeout it does not restart with each
    /// read: a server sets it once per request.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::{Duration, Instant};
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     // Go: conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
    ///     s.set_read_deadline(Some(Instant::now() + Duration::from_millis(10))).unwrap();
    ///     let err = s.read(&mut [0; 8]).unwrap_err(); // nobody writes
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        Ok(())
    }

    /// Go's `SetWriteDeadline`; see `set_read_deadline`.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Instant;
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_write_deadline(Some(Instant::now())).unwrap(); // already past
    /// assert_eq!(s.write(b"late").unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// s.set_write_deadline(None).unwrap(); // cleared
    /// assert_eq!(s.write(b"now").unwrap(), 3);
    /// ```
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// With `true`, reads and writes return `WouldBlock` instead of waiting, as `std`'s.
    ///
    /// ```
    /// use std::io::Read;
    /// let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_nonblocking(true).unwrap();
    /// let err = s.read(&mut [0; 8]).unwrap_err(); // nothing to read: no wait
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same connection (one descriptor, one registration), typically
    /// for a reader and a writer goroutine. Never fails; `io::Result` for `std`'s signature.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use gort::net::{TcpListener, TcpStream};
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let client = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     let (mut server, _) = ln.accept().unwrap();
    ///     let mut writer = client.try_clone().unwrap(); // the same connection
    ///     gort::go!(move || writer.write_all(b"hi").unwrap()); // a writer goroutine
    ///     let mut buf = [0; 2];
    ///     server.read_exact(&mut buf).unwrap();
    ///     assert_eq!(&buf, b"hi");
    /// });
    /// ```
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Conn.Close`: reads and writes waiting on the connection (any handle) fail with
    /// `NotConnected` ("use of closed network connection"), as does every later one, and the
    /// peer sees the connection closed. The descriptor is released with the last handle.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let s = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     let mut reader = s.try_clone().unwrap();
    ///     let r = gort::spawn(move || reader.read(&mut [0; 8]));
    ///     gort::time::sleep(std::time::Duration::from_millis(10));
    ///     s.close(); // wakes the reader
    ///     assert_eq!(r.join().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// });
    /// ```
    pub fn close(&self) {
        self.sock.close();
    }
}

super::task_io::stream_task_io!(
    TcpStream,
    "# gort::run(|| {\n\
     # let ln = gort::net::TcpListener::bind(\"127.0.0.1:0\").unwrap();\n\
     # let a = gort::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();\n\
     # let (b, _) = ln.accept().unwrap();"
);

impl Read for &TcpStream {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock
            .run_stream(Mode::Read, buf.len(), |mut s| s.read(buf))
    }

    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.sock
            .run_stream(Mode::Read, len, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &TcpStream {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write_stream(&[IoSlice::new(buf)])
    }

    #[track_caller]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.sock.write_stream(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    #[track_caller]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl From<std::net::TcpStream> for TcpStream {
    /// [`TcpStream::from_std`], panicking if the socket cannot be registered with the poller
    /// (the system is out of memory or descriptors).
    #[track_caller]
    fn from(s: std::net::TcpStream) -> TcpStream {
        match TcpStream::from_std(s) {
            Ok(s) => s,
            Err(e) => panic!("gort::net: cannot register a TcpStream with the poller: {e}"),
        }
    }
}

impl From<std::net::TcpListener> for TcpListener {
    /// [`TcpListener::from_std`], panicking if the socket cannot be registered with the
    /// poller.
    #[track_caller]
    fn from(ln: std::net::TcpListener) -> TcpListener {
        match TcpListener::from_std(ln) {
            Ok(ln) => ln,
            Err(e) => panic!("gort::net: cannot register a TcpListener with the poller: {e}"),
        }
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.io().as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.io().as_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(a) = self.local_addr() {
            d.field("addr", &a);
        }
        if let Ok(a) = self.peer_addr() {
            d.field("peer", &a);
        }
        d.field("fd", &self.sock.fd()).finish()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(a) = self.local_addr() {
            d.field("addr", &a);
        }
        d.field("fd", &self.sock.fd()).finish()
    }
}
