//! UDP: `std::net::UdpSocket`, parking goroutines instead of threads.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sock::Sock;
use crate::netpoll::Mode;

/// A UDP socket, as `std::net::UdpSocket`; receives (and sends into a full buffer) park the
/// goroutine until the socket is ready.
///
/// ```
/// use gort::net::UdpSocket;
///
/// gort::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b_addr = b.local_addr().unwrap();
///     let echo = gort::spawn(move || {
///         let mut buf = [0; 64];
///         let (n, from) = b.recv_from(&mut buf).unwrap(); // parks until a datagram arrives
///         b.send_to(&buf[..n], from).unwrap();
///     });
///     a.send_to(b"ping", b_addr).unwrap();
///     let mut buf = [0; 64];
///     let (n, _) = a.recv_from(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     echo.join();
/// });
/// ```
pub struct UdpSocket {
    sock: Arc<Sock<mio::net::UdpSocket>>,
}

impl UdpSocket {
    /// Binds a socket to `addr` (each resolved address in turn, as `std`).
    ///
    /// ```
    /// // Go: net.ListenPacket("udp", "127.0.0.1:0")
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(s.local_addr().unwrap().port(), 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        super::each_addr(addr, |a| {
            Ok(UdpSocket {
                sock: Arc::new(Sock::new(mio::net::UdpSocket::bind(a)?)?),
            })
        })
    }

    /// Wraps a socket from `std`, made non-blocking and registered with the poller.
    ///
    /// ```
    /// let std_s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let addr = std_s.local_addr().unwrap();
    /// let s = gort::net::UdpSocket::from_std(std_s).unwrap();
    /// assert_eq!(s.local_addr().unwrap(), addr);
    /// ```
    pub fn from_std(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        s.set_nonblocking(true)?;
        Ok(UdpSocket {
            sock: Arc::new(Sock::new(mio::net::UdpSocket::from_std(s))?),
        })
    }

    /// The socket back as `std`'s, in blocking mode. Fails if other handles
    /// ([`try_clone`](UdpSocket::try_clone)) share it.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let addr = s.local_addr().unwrap();
    /// let std_s: std::net::UdpSocket = s.into_std().unwrap(); // blocking again
    /// assert_eq!(std_s.local_addr().unwrap(), addr);
    /// ```
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        let sock = Arc::try_unwrap(self.sock).map_err(|_| super::shared())?;
        let s: std::net::UdpSocket = sock.into_inner()?.into();
        s.set_nonblocking(false)?;
        Ok(s)
    }

    /// Sends a datagram to `addr` (its first resolved address, as `std`); parks while the
    /// send buffer is full.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     assert_eq!(a.send_to(b"ping", b.local_addr().unwrap()).unwrap(), 4); // Go: WriteTo
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.recv_from(&mut buf).unwrap(), (4, a.local_addr().unwrap()));
    /// });
    /// ```
    #[track_caller]
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = super::resolve(addr)?.into_iter().next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.sock.run(Mode::Write, |s| s.send_to(buf, to))
    }

    /// Receives a datagram and its sender; parks until one arrives.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let to = b.local_addr().unwrap();
    ///     gort::go!(move || {
    ///         a.send_to(b"hi", to).unwrap();
    ///     });
    ///     let mut buf = [0; 8];
    ///     let (n, _from) = b.recv_from(&mut buf).unwrap(); // Go: ReadFrom; parks until it arrives
    ///     assert_eq!(&buf[..n], b"hi");
    /// });
    /// ```
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.run(Mode::Read, |s| s.recv_from(buf))
    }

    /// Receives a datagram without removing it from the queue.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.send_to(b"once", b.local_addr().unwrap()).unwrap();
    ///     let mut buf = [0; 8];
    ///     let peeked = b.peek_from(&mut buf).unwrap();
    ///     assert_eq!(b.recv_from(&mut buf).unwrap(), peeked); // still queued after the peek
    /// });
    /// ```
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.sock.run(Mode::Read, |s| s.peek_from(buf))
    }

    /// Sets the default peer (each resolved address in turn until one works, as `std`):
    /// `send` and `recv` then use it, and datagrams from elsewhere are dropped.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).unwrap();
    ///     b.connect(a.local_addr().unwrap()).unwrap();
    ///     a.send(b"hi").unwrap();
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// });
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        super::each_addr(addr, |a| self.sock.io().connect(a))
    }

    /// Sends to the connected peer.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).unwrap(); // Go: net.DialUDP
    ///     assert_eq!(a.send(b"ping").unwrap(), 4);
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.recv_from(&mut buf).unwrap().0, 4);
    /// });
    /// ```
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.run(Mode::Write, |s| s.send(buf))
    }

    /// Receives from the connected peer.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     b.connect(a.local_addr().unwrap()).unwrap(); // receive from `a` only
    ///     a.send_to(b"pong", b.local_addr().unwrap()).unwrap();
    ///     let mut buf = [0; 8];
    ///     let n = b.recv(&mut buf).unwrap();
    ///     assert_eq!(&buf[..n], b"pong");
    /// });
    /// ```
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.run(Mode::Read, |s| s.recv(buf))
    }

    /// Receives from the connected peer without removing the datagram.
    ///
    /// ```
    /// gort::run(|| {
    ///     let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     b.connect(a.local_addr().unwrap()).unwrap();
    ///     a.send_to(b"data", b.local_addr().unwrap()).unwrap();
    ///     let mut buf = [0; 8];
    ///     assert_eq!(b.peek(&mut buf).unwrap(), 4);
    ///     assert_eq!(b.recv(&mut buf).unwrap(), 4); // still queued after the peek
    /// });
    /// ```
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.run(Mode::Read, |s| s.peek(buf))
    }

    /// The local address.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let addr = s.local_addr().unwrap(); // Go: conn.LocalAddr()
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().local_addr()
    }

    /// The connected peer's address.
    ///
    /// ```
    /// let a = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(a.peer_addr().is_err()); // not connected
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.io().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_broadcast(true).unwrap();
    /// assert!(s.broadcast().unwrap());
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.io().set_broadcast(on)
    }

    /// `SO_BROADCAST`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(!s.broadcast().unwrap()); // off by default
    /// ```
    pub fn broadcast(&self) -> io::Result<bool> {
        self.sock.io().broadcast()
    }

    /// Sets `IP_MULTICAST_LOOP`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_multicast_loop_v4(false).unwrap();
    /// assert!(!s.multicast_loop_v4().unwrap());
    /// ```
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.sock.io().set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_LOOP`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.multicast_loop_v4().unwrap()); // on by default
    /// ```
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.sock.io().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_multicast_ttl_v4(8).unwrap();
    /// assert_eq!(s.multicast_ttl_v4().unwrap(), 8);
    /// ```
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.sock.io().set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(s.multicast_ttl_v4().unwrap(), 1); // the default: this subnet only
    /// ```
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.sock.io().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    ///
    /// ```
    /// // Runs where the host has IPv6 (on loopback at least).
    /// if let Ok(s) = gort::net::UdpSocket::bind("[::1]:0") {
    ///     s.set_multicast_loop_v6(false).unwrap();
    ///     assert!(!s.multicast_loop_v6().unwrap());
    /// }
    /// ```
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.sock.io().set_multicast_loop_v6(on)
    }

    /// `IPV6_MULTICAST_LOOP`.
    ///
    /// ```
    /// // Runs where the host has IPv6 (on loopback at least).
    /// if let Ok(s) = gort::net::UdpSocket::bind("[::1]:0") {
    ///     assert!(s.multicast_loop_v6().unwrap()); // on by default
    /// }
    /// ```
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.sock.io().multicast_loop_v6()
    }

    /// Joins an IPv4 multicast group.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let s = gort::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    /// let group = Ipv4Addr::new(224, 0, 0, 123);
    /// s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap(); // on the loopback interface
    /// s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    /// ```
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.io().join_multicast_v4(multiaddr, interface)
    }

    /// Joins an IPv6 multicast group.
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// // Runs where the host has IPv6 (on loopback at least).
    /// if let Ok(s) = gort::net::UdpSocket::bind("[::1]:0") {
    ///     let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x123);
    ///     s.join_multicast_v6(&group, 1).unwrap(); // interface 1: loopback
    ///     s.leave_multicast_v6(&group, 1).unwrap();
    /// }
    /// ```
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.io().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// let s = gort::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    /// let group = Ipv4Addr::new(224, 0, 0, 124);
    /// s.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    /// s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
    /// assert!(s.leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST).is_err()); // not a member now
    /// ```
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.sock.io().leave_multicast_v4(multiaddr, interface)
    }

    /// Leaves an IPv6 multicast group.
    ///
    /// ```
    /// use std::net::Ipv6Addr;
    /// // Runs where the host has IPv6 (on loopback at least).
    /// if let Ok(s) = gort::net::UdpSocket::bind("[::1]:0") {
    ///     let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x124);
    ///     s.join_multicast_v6(&group, 1).unwrap(); // interface 1: loopback
    ///     s.leave_multicast_v6(&group, 1).unwrap();
    ///     assert!(s.leave_multicast_v6(&group, 1).is_err()); // not a member now
    /// }
    /// ```
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.sock.io().leave_multicast_v6(multiaddr, interface)
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_ttl(42).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 42);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.sock.io().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_ttl(7).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 7);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.sock.io().ttl()
    }

    /// Takes the pending `SO_ERROR` (an ICMP error for a connected socket).
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.take_error().unwrap().is_none()); // no error pending
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.io().take_error()
    }

    /// `std`'s per-operation read timeout: a receive that waits longer fails with `TimedOut`.
    /// `Some(ZERO)` is refused.
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ///     let err = s.recv_from(&mut [0; 8]).unwrap_err(); // nothing arrives
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
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
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
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
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
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), None); // none by default
    /// s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(3)));
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.sock.timeout(Mode::Write))
    }

    /// Go's `SetDeadline`: both directions.
    ///
    /// ```
    /// use std::time::Instant;
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_deadline(Some(Instant::now())).unwrap(); // already past, both directions
    /// let err = s.send_to(b"late", s.local_addr().unwrap()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(s.recv_from(&mut [0; 8]).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Read, deadline);
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// Go's `SetReadDeadline`: receives past `deadline` fail with `TimedOut`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// gort::run(|| {
    ///     let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     s.set_read_deadline(Some(Instant::now() + Duration::from_millis(10))).unwrap();
    ///     let err = s.recv_from(&mut [0; 8]).unwrap_err();
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
    /// use std::time::Instant;
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let to = s.local_addr().unwrap();
    /// s.set_write_deadline(Some(Instant::now())).unwrap(); // already past
    /// assert_eq!(s.send_to(b"late", to).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// s.set_write_deadline(None).unwrap(); // cleared
    /// assert_eq!(s.send_to(b"now", to).unwrap(), 3);
    /// ```
    pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        self.sock.set_deadline(Mode::Write, deadline);
        Ok(())
    }

    /// With `true`, operations return `WouldBlock` instead of waiting, as `std`'s.
    ///
    /// ```
    /// let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_nonblocking(true).unwrap();
    /// let err = s.recv_from(&mut [0; 8]).unwrap_err(); // nothing queued: no wait
    /// assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.sock.set_nonblocking(nonblocking);
        Ok(())
    }

    /// A second handle to the same socket (one descriptor, one registration).
    ///
    /// ```
    /// gort::run(|| {
    ///     let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let receiver = s.try_clone().unwrap(); // the same socket
    ///     let r = gort::spawn(move || receiver.recv_from(&mut [0; 8]).map(|(n, _)| n));
    ///     s.send_to(b"self", s.local_addr().unwrap()).unwrap(); // to itself
    ///     assert_eq!(r.join().unwrap(), 4);
    /// });
    /// ```
    #[allow(clippy::unnecessary_wraps)]
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            sock: self.sock.clone(),
        })
    }

    /// Go's `Close`: operations waiting on the socket (any handle) fail with `NotConnected`,
    /// as does every later one. The descriptor is released with the last handle.
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let s = gort::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let s2 = s.try_clone().unwrap();
    ///     let waiter = gort::spawn(move || s2.recv_from(&mut [0; 8]).map(|_| ()));
    ///     gort::time::sleep(Duration::from_millis(10));
    ///     s.close(); // Go: conn.Close(); wakes the waiting receive
    ///     assert_eq!(waiter.join().unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    /// });
    /// ```
    pub fn close(&self) {
        self.sock.close();
    }
}

impl From<std::net::UdpSocket> for UdpSocket {
    /// [`UdpSocket::from_std`], panicking if the socket cannot be registered with the poller.
    #[track_caller]
    fn from(s: std::net::UdpSocket) -> UdpSocket {
        match UdpSocket::from_std(s) {
            Ok(s) => s,
            Err(e) => panic!("gort::net: cannot register a UdpSocket with the poller: {e}"),
        }
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.io().as_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(a) = self.local_addr() {
            d.field("addr", &a);
        }
        d.field("fd", &self.sock.fd()).finish()
    }
}
