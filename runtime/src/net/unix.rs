//! Unix-domain stream sockets: `std::os::unix::net::UnixListener` and `UnixStream`, parking
//! goroutines instead of threads.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sock::Sock;
use crate::netpoll::Mode;

/// A Unix-domain server socket, as `std::os::unix::net::UnixListener`.
///
/// ```
/// use std::io::{Read, Write};
/// use gort::net::{UnixListener, UnixStream};
///
/// gort::run(|| {
///     let path = std::env::temp_dir().join(format!("gort-doc-{}.sock", std::process::id()));
///     let _ = std::fs::remove_file(&path);
///     let ln = UnixListener::bind(&path).unwrap();
///     gort::go!(move || {
///         let (mut c, _) = ln.accept().unwrap();
///         c.write_all(b"hello").unwrap();
///     });
///     let mut s = UnixStream::connect(&path).unwrap();
///     let mut got = String::new();
///     s.read_to_string(&mut got).unwrap();
///     assert_eq!(got, "hello");
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixListener {
    sock: Arc<Sock<mio::net::UnixListener>>,
}

/// A Unix-domain stream, as `std::os::unix::net::UnixStream`; `Read` and `Write` for it and
/// for `&` it.
///
/// ```
/// use std::io::{Read, Write};
///
/// gort::run(|| {
///     let (a, mut b) = gort::net::UnixStream::pair().unwrap();
///     gort::go!(move || (&a).write_all(b"ping").unwrap());
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).unwrap(); // parks until the other goroutine writes
///     assert_eq!(&buf, b"ping");
/// });
/// ```
pub struct UnixStream {
    sock: Arc<Sock<mio::net::UnixStream>>,
}

/// An iterator over a listener's connections ([`UnixListener::incoming`]); never ends.
///
/// ```
/// use std::io::Write;
/// use gort::net::{UnixListener, UnixStream};
/// let path = std::env::temp_dir().join(format!("gort-doc-inc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// gort::run(move || {
///     let ln = UnixListener::bind(&path).unwrap();
///     let p = path.clone();
///     gort::go!(move || {
///         for _ in 0..2 {
///             UnixStream::connect(&p).unwrap().write_all(b"x").unwrap();
///         }
///     });
///     let served = ln.incoming().take(2).filter(|c| c.is_ok()).count();
///     assert_eq!(served, 2);
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl UnixListener {
    /// Binds a listener to the path `path` (which must not exist), with the system's maximum
    /// backlog, as Go does.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("gort-doc-bind-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let ln = gort::net::UnixListener::bind(&path).unwrap(); // Go: net.Listen("unix", path)
    /// assert_eq!(ln.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// assert!(gort::net::UnixListener::bind(&path).is_err()); // the path exists now
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_mio(mio::net::UnixListener::bind(path)?)
    }

    /// Binds a listener to an address (an abstract one, say).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// // An abstract address (Linux): no file to remove afterwards.
    /// let name = format!("gort-doc-bind-addr-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(&name).unwrap();
    /// let ln = gort::net::UnixListener::bind_addr(&addr).unwrap();
    /// assert_eq!(ln.local_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
    /// ```
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::from_mio(mio::net::UnixListener::bind_addr(addr)?)
    }

    fn from_mio(ln: mio::net::UnixListener) -> io::Result<UnixListener> {
        // SAFETY: a listening socket we own; listen() again only changes its backlog.
        if unsafe { libc::listen(ln.as_raw_fd(), super::tcp::max_backlog()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UnixListener {
            sock: Arc::new(Sock::new(ln)?),
        })
    }

    /// Wraps a listener from `std`, made non-blocking and registered with the poller.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// let name = format!("gort-doc-ln-from-std-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(&name).unwrap();
    /// let std_ln = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    /// let ln = gort::net::UnixListener::from_std(std_ln).unwrap();
    /// assert_eq!(ln.local_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
    /// ```
    pub fn from_std(ln: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        ln.set_nonblocking(true)?;
        Ok(UnixListener {
            sock: Arc::new(Sock::new(mio::net::UnixListener::from_std(ln))?),
        })
    }

    /// The listener back as `std`'s, in blocking mode. Fails if other handles share it.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// let name = format!("gort-doc-ln-into-std-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(&name).unwrap();
    /// let ln = gort::net::UnixListener::bind_addr(&addr).unwrap();
    /// let std_ln = ln.into_std().unwrap(); // blocking again
    /// assert_eq!(std_ln.local_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let ln: std::os::unix::net::UnixListener = sock.into_inner()?.into();
        ln.set_nonblocking(false)?;
        Ok(ln)
    }

    /// Waits for a connection: parks until one arrives, the deadline passes (`TimedOut`), or
    /// the listener is closed (`NotConnected`).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use gort::net::{UnixListener, UnixStream};
    /// gort::run(|| {
    ///     let name = format!("gort-doc-accept-{}", std::process::id());
    ///     let addr = SocketAddr::from_abstract_name(name).unwrap();
    ///     let ln = UnixListener::bind_addr(&addr).unwrap();
    ///     gort::go!(move || {
    ///         let mut c = UnixStream::connect_addr(&addr).unwrap();
    ///         c.write_all(b"hi").unwrap();
    ///     });
    ///     let (mut conn, _) = ln.accept().unwrap(); // Go: ln.Accept(); parks until a client comes
    ///     let mut got = String::new();
    ///     conn.read_to_string(&mut got).unwrap();
    ///     assert_eq!(got, "hi");
    /// });
    /// ```
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.sock.run(Mode::Read, |ln| ln.accept())?;
        Ok((UnixStream::from_mio(s)?, addr))
    }

    /// An iterator of `accept`'s connections.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use gort::net::{UnixListener, UnixStream};
    /// gort::run(|| {
    ///     let name = format!("gort-doc-incoming-{}", std::process::id());
    ///     let addr = SocketAddr::from_abstract_name(name).unwrap();
    ///     let ln = UnixListener::bind_addr(&addr).unwrap();
    ///     let _client = UnixStream::connect_addr(&addr).unwrap(); // waits in the backlog
    ///     assert!(ln.incoming().next().unwrap().is_ok());
    /// });
    /// ```
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address the listener is bound to.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("gort-doc-laddr-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let ln = gort::net::UnixListener::bind(&path).unwrap();
    /// assert_eq!(ln.local_addr().unwrap().as_pathname(), Some(path.as_path())); // Go: ln.Addr()
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// Takes the pending `SO_ERROR`.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// let name = format!("gort-doc-ln-err-{}", std::process::id());
    /// let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    /// let ln = gort::net::UnixListener::bind_addr(&addr).unwrap();
    /// assert!(ln.take_error().unwrap().is_none()); // no error pending
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// With `true`, `accept` returns `WouldBlock` instead of waiting.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// let name = format!("gort-doc-ln-nb-{}", std::process::id());
    /// let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    /// let ln = gort::net::UnixListener::bind_addr(&addr).unwrap();
    /// ln.set_nonblocking(true).unwrap();
    /// let err = ln.accept().unwrap_err(); // nobody connects: no wait
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same listener (one descriptor, one registration).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use gort::net::{UnixListener, UnixStream};
    /// gort::run(|| {
    ///     let name = format!("gort-doc-clone-{}", std::process::id());
    ///     let addr = SocketAddr::from_abstract_name(name).unwrap();
    ///     let ln = UnixListener::bind_addr(&addr).unwrap();
    ///     let ln2 = ln.try_clone().unwrap(); // the same socket
    ///     let acceptor = gort::spawn(move || ln2.accept().is_ok());
    ///     let _client = UnixStream::connect_addr(&addr).unwrap();
    ///     assert!(acceptor.join());
    /// });
    /// ```
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Listener.Close`: a waiting `accept` (any handle) fails with `NotConnected`, as
    /// does every later one. Unlike Go, the socket file is not removed: remove it yourself,
    /// as with `std`.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let name = format!("gort-doc-ln-close-{}", std::process::id());
    ///     let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    ///     let ln = gort::net::UnixListener::bind_addr(&addr).unwrap();
    ///     let ln2 = ln.try_clone().unwrap();
    ///     let waiter = gort::spawn(move || ln2.accept().map(|_| ()));
    ///     gort::time::sleep(Duration::from_millis(10));
    ///     ln.close(); // Go: ln.Close(); wakes the waiting accept
    ///     assert_eq!(waiter.join().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// });
    /// ```
    pub fn close(&self) {
        self.sock.close();
    }

    /// Go's `SetDeadline` for `accept`.
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::time::{Duration, Instant};
    /// gort::run(|| {
    ///     let name = format!("gort-doc-ln-deadline-{}", std::process::id());
    ///     let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    ///     let ln = gort::net::UnixListener::bind_addr(&addr).unwrap();
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

impl<'a> Iterator for UnixIncoming<'a> {
    type Item = io::Result<UnixStream>;

    #[track_caller]
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl UnixStream {
    fn from_mio(s: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            sock: Arc::new(Sock::new(s)?),
        })
    }

    /// Connects to the socket at `path`. A Unix-domain connect completes at once or fails;
    /// with the listener's backlog full it fails with `WouldBlock` ("resource temporarily
    /// unavailable"), as Go's does.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use gort::net::{UnixListener, UnixStream};
    /// let path = std::env::temp_dir().join(format!("gort-doc-dial-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// gort::run(move || {
    ///     let ln = UnixListener::bind(&path).unwrap();
    ///     let mut s = UnixStream::connect(&path).unwrap(); // Go: net.Dial("unix", path)
    ///     let (mut conn, _) = ln.accept().unwrap();
    ///     s.write_all(b"hi").unwrap();
    ///     let mut buf = [0; 2];
    ///     conn.read_exact(&mut buf).unwrap();
    ///     assert_eq!(&buf, b"hi");
    ///     std::fs::remove_file(&path).unwrap();
    /// });
    /// ```
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::from_mio(mio::net::UnixStream::connect(path)?)
    }

    /// Connects to an address (an abstract one, say).
    ///
    /// ```
    /// use std::os::linux::net::SocketAddrExt;
    /// use std::os::unix::net::SocketAddr;
    /// use gort::net::{UnixListener, UnixStream};
    /// let name = format!("gort-doc-connect-addr-{}", std::process::id());
    /// let addr = SocketAddr::from_abstract_name(&name).unwrap(); // Go: "@name"
    /// let _ln = UnixListener::bind_addr(&addr).unwrap();
    /// let s = UnixStream::connect_addr(&addr).unwrap();
    /// assert_eq!(s.peer_addr().unwrap().as_abstract_name(), Some(name.as_bytes()));
    /// ```
    #[track_caller]
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::from_mio(mio::net::UnixStream::connect_addr(addr)?)
    }

    /// A connected pair of streams.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// gort::run(|| {
    ///     let (mut a, mut b) = gort::net::UnixStream::pair().unwrap();
    ///     a.write_all(b"ping").unwrap();
    ///     let mut buf = [0; 4];
    ///     b.read_exact(&mut buf).unwrap();
    ///     assert_eq!(&buf, b"ping");
    /// });
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Wraps a stream from `std`, made non-blocking and registered with the poller.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut a = gort::net::UnixStream::from_std(a).unwrap();
    /// a.write_all(b"hi").unwrap();
    /// let mut buf = [0; 2];
    /// b.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"hi");
    /// ```
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        UnixStream::from_mio(mio::net::UnixStream::from_std(s))
    }

    /// The stream back as `std`'s, in blocking mode. Fails if other handles share it.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let (a, b) = gort::net::UnixStream::pair().unwrap();
    /// let mut a = a.into_std().unwrap(); // blocking again
    /// (&b).write_all(b"hi").unwrap();
    /// let mut buf = [0; 2];
    /// a.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"hi");
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let s: std::os::unix::net::UnixStream = sock.into_inner()?.into();
        s.set_nonblocking(false)?;
        Ok(s)
    }

    /// The local address.
    ///
    /// ```
    /// let (a, _b) = gort::net::UnixStream::pair().unwrap();
    /// assert!(a.local_addr().unwrap().is_unnamed()); // a pair's ends have no names
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// The peer's address.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("gort-doc-peer-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let _ln = gort::net::UnixListener::bind(&path).unwrap();
    /// let s = gort::net::UnixStream::connect(&path).unwrap();
    /// assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(path.as_path())); // Go: RemoteAddr()
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().peer_addr()
    }

    /// Shuts down one half or both, as `std`'s.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::Shutdown;
    /// gort::run(|| {
    ///     let (mut a, mut b) = gort::net::UnixStream::pair().unwrap();
    ///     a.write_all(b"last").unwrap();
    ///     a.shutdown(Shutdown::Write).unwrap(); // Go: conn.CloseWrite()
    ///     let mut got = String::new();
    ///     b.read_to_string(&mut got).unwrap(); // ends at the half-close
    ///     assert_eq!(got, "last");
    /// });
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.undrain(Mode::Read);
        self.sock.undrain(Mode::Write);
        self.sock.io().shutdown(how)
    }

    /// Takes the pending `SO_ERROR`.
    ///
    /// ```
    /// let (a, _b) = gort::net::UnixStream::pair().unwrap();
    /// assert!(a.take_error().unwrap().is_none()); // no error pending
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// `std`'s per-operation read timeout (fails with `TimedOut`); `Some(ZERO)` is refused.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let (mut a, _b) = gort::net::UnixStream::pair().unwrap();
    ///     a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     let err = a.read(&mut [0; 8]).unwrap_err(); // nobody writes
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Mode::Read, dur)
    }

    /// `std`'s per-operation write timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = gort::net::UnixStream::pair().unwrap();
    /// a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    /// assert!(a.set_write_timeout(Some(Duration::ZERO)).is_err()); // refused, as in std
    /// ```
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Mode::Write, dur)
    }

    /// The read timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = gort::net::UnixStream::pair().unwrap();
    /// assert_eq!(a.read_timeout().unwrap(), None); // none by default
    /// a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    /// assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Read))
    }

    /// The write timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = gort::net::UnixStream::pair().unwrap();
    /// assert_eq!(a.write_timeout().unwrap(), None); // none by default
    /// a.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    /// assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(3)));
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Write))
    }

    /// Go's `SetDeadline`: both directions.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::time::Instant;
    /// let (mut a, _b) = gort::net::UnixStream::pair().unwrap();
    /// a.set_deadline(Some(Instant::now())).unwrap(); // already past, both directions
    /// assert_eq!(a.write(b"x").unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(a.read(&mut [0; 1]).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// Go's `SetReadDeadline`.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::{Duration, Instant};
    /// gort::run(|| {
    ///     let (mut a, _b) = gort::net::UnixStream::pair().unwrap();
    ///     a.set_read_deadline(Some(Instant::now() + Duration::from_millis(10))).unwrap();
    ///     let err = a.read(&mut [0; 8]).unwrap_err(); // nobody writes
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// });
    /// ```
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        Ok(())
    }

    /// Go's `SetWriteDeadline`.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::time::Instant;
    /// let (mut a, _b) = gort::net::UnixStream::pair().unwrap();
    /// a.set_write_deadline(Some(Instant::now())).unwrap(); // already past
    /// assert_eq!(a.write(b"late").unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// a.set_write_deadline(None).unwrap(); // cleared
    /// assert_eq!(a.write(b"now").unwrap(), 3);
    /// ```
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// With `true`, reads and writes return `WouldBlock` instead of waiting.
    ///
    /// ```
    /// use std::io::Read;
    /// let (mut a, _b) = gort::net::UnixStream::pair().unwrap();
    /// a.set_nonblocking(true).unwrap();
    /// let err = a.read(&mut [0; 8]).unwrap_err(); // nothing to read: no wait
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same stream (one descriptor, one registration).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// gort::run(|| {
    ///     let (a, mut b) = gort::net::UnixStream::pair().unwrap();
    ///     let mut writer = a.try_clone().unwrap(); // the same stream
    ///     gort::go!(move || writer.write_all(b"hi").unwrap()); // a writer goroutine
    ///     let mut buf = [0; 2];
    ///     b.read_exact(&mut buf).unwrap();
    ///     assert_eq!(&buf, b"hi");
    /// });
    /// ```
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Conn.Close`: waiting operations (any handle) fail with `NotConnected`, as does
    /// every later one, and the peer sees the stream closed.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let (a, mut b) = gort::net::UnixStream::pair().unwrap();
    ///     let mut reader = a.try_clone().unwrap();
    ///     let r = gort::spawn(move || reader.read(&mut [0; 8]));
    ///     gort::time::sleep(Duration::from_millis(10));
    ///     a.close(); // Go: conn.Close(); wakes the waiting read
    ///     assert_eq!(r.join().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    ///     assert_eq!(b.read(&mut [0; 8]).unwrap(), 0); // the peer sees the end
    /// });
    /// ```
    pub fn close(&self) {
        self.sock.close();
    }
}

super::task_io::stream_task_io!(
    UnixStream,
    "# gort::run(|| {\n\
     # let (a, b) = gort::net::UnixStream::pair().unwrap();"
);

impl Read for &UnixStream {
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

impl Write for &UnixStream {
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

impl Read for UnixStream {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    #[track_caller]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for UnixStream {
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

impl From<std::os::unix::net::UnixStream> for UnixStream {
    /// [`UnixStream::from_std`], panicking if the socket cannot be registered.
    #[track_caller]
    fn from(s: std::os::unix::net::UnixStream) -> UnixStream {
        match UnixStream::from_std(s) {
            Ok(s) => s,
            Err(e) => panic!("gort::net: cannot register a UnixStream with the poller: {e}"),
        }
    }
}

impl From<std::os::unix::net::UnixListener> for UnixListener {
    /// [`UnixListener::from_std`], panicking if the socket cannot be registered.
    #[track_caller]
    fn from(ln: std::os::unix::net::UnixListener) -> UnixListener {
        match UnixListener::from_std(ln) {
            Ok(ln) => ln,
            Err(e) => panic!("gort::net: cannot register a UnixListener with the poller: {e}"),
        }
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.io().as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.io().as_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.sock.fd())
            .finish()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.sock.fd())
            .finish()
    }
}
