//! Network I/O that parks goroutines: `std::net`'s types with the same names and methods, whose
//! blocking calls park the calling goroutine on the network poller instead of blocking its
//! thread (Go's `net` package over its netpoller).
//!
//! Code ports by changing imports: [`TcpListener`], [`TcpStream`], [`UdpSocket`],
//! [`UnixListener`], [`UnixStream`] have the `std` names and signatures (`bind`, `accept`,
//! `incoming`, `connect`, `connect_timeout`, `read`, `write`, `shutdown`, `set_read_timeout`,
//! `try_clone`, `send_to`, `recv_from`, ...), `std::io::Read` and `Write` for the stream and
//! for `&` the stream, `From` the `std` type, `into_std`, `AsRawFd` and `AsFd`. On top of
//! `std`:
//!
//! - Go's absolute deadlines, per direction: `set_deadline`, `set_read_deadline`,
//!   `set_write_deadline` (an `Instant`, or `None`); past it an operation fails with
//!   `io::ErrorKind::TimedOut` (Go's `i/o timeout`). `std`'s relative timeouts
//!   (`set_read_timeout`) apply to each operation, as in `std`.
//! - `close()` from any goroutine: operations waiting on the socket fail with
//!   `io::ErrorKind::NotConnected` (Go's `use of closed network connection`), as Go's `Close`
//!   does; the descriptor itself goes when the last handle (see `try_clone`) is dropped.
//! - `try_clone` shares the socket (one descriptor, one poll registration) instead of
//!   duplicating the descriptor.
//!
//! The stream types also have an async side for tasks (`poll_read`, `poll_write`, and with
//! the `tokio-io` / `futures-io` features those crates' `AsyncRead` and `AsyncWrite`), over
//! the same poller: async libraries run on gort's sockets inside [`crate::block_on`].
//!
//! Names resolve (`ToSocketAddrs`) inside [`crate::blocking`]: `getaddrinfo` blocks its thread,
//! and the P goes to another thread meanwhile. The same types work from plain threads, which
//! block (in `poll(2)`), as channels do. Regular files are not sockets: Linux cannot poll them
//! (Go does not either); read them inside `gort::blocking`.
//!
//! ```
//! use std::io::{Read, Write};
//! use gort::net::{TcpListener, TcpStream};
//!
//! gort::run(|| {
//!     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = ln.local_addr().unwrap();
//!     gort::go!(move || {
//!         let (mut c, _) = ln.accept().unwrap(); // parks until a client connects
//!         let mut buf = [0; 5];
//!         c.read_exact(&mut buf).unwrap();
//!         c.write_all(&buf).unwrap(); // echo
//!     });
//!     let mut s = TcpStream::connect(addr).unwrap();
//!     s.write_all(b"hello").unwrap();
//!     let mut back = [0; 5];
//!     s.read_exact(&mut back).unwrap();
//!     assert_eq!(&back, b"hello");
//! });
//! ```

mod sock;
mod task_io;
mod tcp;
mod udp;
mod unix;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixIncoming, UnixListener, UnixStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr` inside `gort::blocking` (getaddrinfo blocks its thread).
fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    crate::sched::syscall::blocking(|| addr.to_socket_addrs().map(|it| it.collect()))
}

/// Tries `f` on each address in turn, as `std` does; the last error if none works.
fn each_addr<A, T>(addr: A, mut f: impl FnMut(SocketAddr) -> io::Result<T>) -> io::Result<T>
where
    A: ToSocketAddrs,
{
    let mut last = None;
    for a in resolve(addr)? {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(no_address(last))
}

/// What trying every address ends with: the last one's error, or none to try.
fn no_address(last: Option<io::Error>) -> io::Error {
    last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    })
}

/// `into_std` of a socket that other handles (`try_clone`) share.
fn shared() -> io::Error {
    io::Error::other("the socket has other handles (try_clone); drop them first")
}
