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
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl UnixListener {
    /// Binds a listener to the path `path` (which must not exist), with the system's maximum
    /// backlog, as Go does.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_mio(mio::net::UnixListener::bind(path)?)
    }

    /// Binds a listener to an address (an abstract one, say).
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
    pub fn from_std(ln: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        ln.set_nonblocking(true)?;
        Ok(UnixListener {
            sock: Arc::new(Sock::new(mio::net::UnixListener::from_std(ln))?),
        })
    }

    /// The listener back as `std`'s, in blocking mode. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let ln: std::os::unix::net::UnixListener = sock.into_inner()?.into();
        ln.set_nonblocking(false)?;
        Ok(ln)
    }

    /// Waits for a connection: parks until one arrives, the deadline passes (`TimedOut`), or
    /// the listener is closed (`NotConnected`).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.sock.run(Mode::Read, |ln| ln.accept())?;
        Ok((UnixStream::from_mio(s)?, addr))
    }

    /// An iterator of `accept`'s connections.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// Takes the pending `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// With `true`, `accept` returns `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same listener (one descriptor, one registration).
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Listener.Close`: a waiting `accept` (any handle) fails with `NotConnected`, as
    /// does every later one. Unlike Go, the socket file is not removed: remove it yourself,
    /// as with `std`.
    pub fn close(&self) {
        self.sock.close();
    }

    /// Go's `SetDeadline` for `accept`.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        Ok(())
    }
}

impl<'a> Iterator for UnixIncoming<'a> {
    type Item = io::Result<UnixStream>;

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
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::from_mio(mio::net::UnixStream::connect(path)?)
    }

    /// Connects to an address (an abstract one, say).
    pub fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::from_mio(mio::net::UnixStream::connect_addr(addr)?)
    }

    /// A connected pair of streams.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Wraps a stream from `std`, made non-blocking and registered with the poller.
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        UnixStream::from_mio(mio::net::UnixStream::from_std(s))
    }

    /// The stream back as `std`'s, in blocking mode. Fails if other handles share it.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let s: std::os::unix::net::UnixStream = sock.into_inner()?.into();
        s.set_nonblocking(false)?;
        Ok(s)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().peer_addr()
    }

    /// Shuts down one half or both, as `std`'s.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.undrain(Mode::Read);
        self.sock.undrain(Mode::Write);
        self.sock.io().shutdown(how)
    }

    /// Takes the pending `SO_ERROR`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// `std`'s per-operation read timeout (fails with `TimedOut`); `Some(ZERO)` is refused.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Mode::Read, dur)
    }

    /// `std`'s per-operation write timeout.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.sock.set_timeout(Mode::Write, dur)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Read))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Write))
    }

    /// Go's `SetDeadline`: both directions.
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// Go's `SetReadDeadline`.
    pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        Ok(())
    }

    /// Go's `SetWriteDeadline`.
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// With `true`, reads and writes return `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same stream (one descriptor, one registration).
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Conn.Close`: waiting operations (any handle) fail with `NotConnected`, as does
    /// every later one, and the peer sees the stream closed.
    pub fn close(&self) {
        self.sock.close();
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock
            .run_stream(Mode::Read, buf.len(), |mut s| s.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.sock
            .run_stream(Mode::Read, len, |mut s| s.read_vectored(bufs))
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock
            .run_stream(Mode::Write, buf.len(), |mut s| s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.sock
            .run_stream(Mode::Write, len, |mut s| s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

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
