//! hyper's runtime pieces on gort: its I/O traits over gort's sockets (`Io`), its timer over
//! gort's timers (`Timer`), and its executor (`Exec`: a goroutine per future).

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::net::TcpStream;

/// A connection's byte stream as hyper's `Read` / `Write`: a gort socket's async side
/// (`poll_read` / `poll_write`, the same poll descriptor its blocking calls use), or a TLS
/// session over one.
pub(crate) enum Io {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsStream>),
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => {
                // SAFETY: the bytes are only written (by recv(2) through a raw pointer, never
                // through a Rust reference to uninitialised memory), and `advance` covers
                // exactly what it wrote.
                unsafe {
                    let dst = buf.as_mut();
                    let (ptr, len) = (dst.as_mut_ptr().cast::<u8>() as usize, dst.len());
                    let n = std::task::ready!(s.poll_read_raw(cx, ptr as *mut u8, len))?;
                    buf.advance(n);
                }
            }
            // rustls's plaintext is copied straight out of its buffer (no zeroing of hyper's).
            #[cfg(feature = "tls")]
            Io::Tls(t) => {
                std::task::ready!(t.poll_read_with(cx, |chunk| {
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    n
                }))?;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => s.poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Io::Tls(t) => t.poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => s.poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Io::Tls(t) => {
                // One record's worth at a time: the first non-empty slice.
                let buf = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &**b);
                t.poll_write(cx, buf)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        matches!(self, Io::Plain(_))
    }

    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(_) => Poll::Ready(Ok(())),
            #[cfg(feature = "tls")]
            Io::Tls(t) => t.poll_flush(cx),
        }
    }

    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => {
                // A peer that is gone already is not an error here.
                let _ = s.shutdown(std::net::Shutdown::Write);
                Poll::Ready(Ok(()))
            }
            #[cfg(feature = "tls")]
            Io::Tls(t) => t.poll_shutdown(cx),
        }
    }
}

impl AsRawFd for Io {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Io::Plain(s) => s.as_raw_fd(),
            #[cfg(feature = "tls")]
            Io::Tls(t) => t.socket().as_raw_fd(),
        }
    }
}

/// `fut`, or `None` once `sleep` completes or `stop` says so first: the server's handshake
/// against its shutdown signal, the client's request against its context. `stop` leaves the
/// task's waker wherever its condition will be signalled.
pub(crate) struct Race<F, S> {
    pub(crate) fut: F,
    pub(crate) sleep: Option<crate::time::Sleep>,
    pub(crate) stop: S,
}

impl<F, S> std::future::Future for Race<F, S>
where
    F: std::future::Future + Unpin,
    S: FnMut(&mut Context<'_>) -> bool + Unpin,
{
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if let Poll::Ready(v) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(Some(v));
        }
        if (self.stop)(cx) {
            return Poll::Ready(None);
        }
        if let Some(s) = &mut self.sleep {
            if Pin::new(s).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    }
}

/// hyper's timer: gort's [`Sleep`](crate::time::Sleep) futures on the calling goroutine's
/// runtime (hyper asks for them on the connection's goroutine).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timer;

/// A gort `Sleep` as hyper's.
struct HyperSleep(crate::time::Sleep);

impl std::future::Future for HyperSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::time::Sleep::new(d)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::time::Sleep::until(deadline)))
    }
}

/// hyper's executor (HTTP/2 streams, connection tasks): a goroutine per future, which runs it
/// with `block_on`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Exec;

impl<F> hyper::rt::Executor<F> for Exec
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        crate::go!(move || {
            crate::block_on(fut);
        });
    }
}
