//! hyper's runtime pieces on gort: its I/O traits over gort's sockets (`Io`), its timer over
//! gort's timers (`Timer`), and its executor (`Exec`: a goroutine per future).

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::net::TcpStream;

/// A gort socket as hyper's `Read` / `Write`: its async side (`poll_read` / `poll_write`), the
/// same poll descriptor its blocking calls use.
pub(crate) struct Io(pub(crate) TcpStream);

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the bytes are only written (by recv(2) through a raw pointer, never through
        // a Rust reference to uninitialised memory), and `advance` covers exactly what it
        // wrote.
        let n = unsafe {
            let dst = buf.as_mut();
            let (ptr, len) = (dst.as_mut_ptr().cast::<u8>() as usize, dst.len());
            std::task::ready!(self.0.poll_read_raw(cx, ptr as *mut u8, len))?
        };
        // SAFETY: recv(2) initialised the first `n` bytes.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A peer that is gone already is not an error here.
        let _ = self.0.shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

impl AsRawFd for Io {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
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
