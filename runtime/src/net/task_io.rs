//! The async side of the stream sockets ([`TcpStream`](super::TcpStream),
//! [`UnixStream`](super::UnixStream)): `poll_read` / `poll_write` methods over the same poller
//! and poll descriptor as the blocking calls (a task's waker waits where a parked goroutine
//! would, with the same deadlines and close semantics: `Sock::poll_stream`), and the async I/O
//! traits of tokio (feature `tokio-io`: tokio's traits only, no tokio runtime) and of
//! `futures-io` (feature `futures-io`), so that async libraries can run on gort's sockets from
//! a goroutine's [`block_on`](crate::block_on).

/// The poll methods and trait impls for a stream type with a `sock: Arc<Sock<_>>` field.
macro_rules! stream_task_io {
    ($ty:ident, $example_connect:literal) => {
        impl $ty {
            /// The async side of `read`: reads into `buf` if data is there, otherwise leaves
            /// the task's waker with the poller (readiness, a close or the read deadline wakes
            /// it) and returns `Pending`. What tokio's and `futures-io`'s `AsyncRead` impls
            /// (features `tokio-io`, `futures-io`) call.
            ///
            /// One task at a time per direction: a second task's poll takes the first's place
            /// (as with any single-waker I/O object). Blocking calls and a task in the same
            /// direction take turns; the task polls again a millisecond after finding a
            /// blocking call in the direction.
            ///
            /// ```
            /// use std::future::poll_fn;
            /// use std::io::Write;
            #[doc = $example_connect]
            /// (&a).write_all(b"ping").unwrap();
            /// let mut buf = [0; 4];
            /// let n = gort::block_on(poll_fn(|cx| b.poll_read(cx, &mut buf))).unwrap();
            /// assert_eq!(&buf[..n], b"ping");
            /// # });
            /// ```
            pub fn poll_read(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                use std::io::Read;
                if buf.is_empty() {
                    return std::task::Poll::Ready(Ok(0));
                }
                let len = buf.len();
                self.sock
                    .poll_stream(crate::netpoll::Mode::Read, cx, len, |mut s| {
                        s.read(&mut *buf)
                    })
            }

            /// `poll_read` into `len` bytes at `ptr`, which may be uninitialised: recv(2) writes
            /// them through the raw pointer (hyper's read buffers).
            #[allow(dead_code)]
            pub(crate) fn poll_read_raw(
                &self,
                cx: &mut std::task::Context<'_>,
                ptr: *mut u8,
                len: usize,
            ) -> std::task::Poll<std::io::Result<usize>> {
                use std::os::fd::AsRawFd;
                if len == 0 {
                    return std::task::Poll::Ready(Ok(0));
                }
                self.sock
                    .poll_stream(crate::netpoll::Mode::Read, cx, len, |s| {
                        // SAFETY: the caller's `ptr` is valid for writes of `len` bytes for the
                        // call; recv(2) writes at most `len`.
                        let n = unsafe { libc::recv(s.as_raw_fd(), ptr.cast(), len, 0) };
                        if n < 0 {
                            Err(std::io::Error::last_os_error())
                        } else {
                            Ok(n as usize)
                        }
                    })
            }

            /// The async side of `write`: writes what the send buffer takes of `buf`, or
            /// leaves the task's waker with the poller and returns `Pending` (see
            /// [`poll_read`](Self::poll_read)). Never raises `SIGPIPE`.
            ///
            /// ```
            /// use std::future::poll_fn;
            /// use std::io::Read;
            #[doc = $example_connect]
            /// let n = gort::block_on(poll_fn(|cx| a.poll_write(cx, b"pong"))).unwrap();
            /// let mut buf = [0; 4];
            /// (&b).read_exact(&mut buf[..n]).unwrap();
            /// assert_eq!(&buf[..n], &b"pong"[..n]);
            /// # });
            /// ```
            pub fn poll_write(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
            }

            /// [`poll_write`](Self::poll_write) of several buffers (one `sendmsg`).
            pub fn poll_write_vectored(
                &self,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                use std::os::fd::AsRawFd;
                let len: usize = bufs.iter().map(|b| b.len()).sum();
                if len == 0 {
                    return std::task::Poll::Ready(Ok(0));
                }
                self.sock
                    .poll_stream(crate::netpoll::Mode::Write, cx, len, |s| {
                        crate::net::sock::send_nosignal(s.as_raw_fd(), bufs)
                    })
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut &*self), cx, buf)
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let n = std::task::ready!($ty::poll_read(
                    self.get_mut(),
                    cx,
                    buf.initialize_unfilled()
                ))?;
                buf.advance(n);
                std::task::Poll::Ready(Ok(()))
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write(self.get_mut(), cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write_vectored(self.get_mut(), cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write(self.get_mut(), cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write_vectored(self.get_mut(), cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_read(self.get_mut(), cx, buf)
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_read(self.get_mut(), cx, buf)
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write(self.get_mut(), cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write_vectored(self.get_mut(), cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write(self.get_mut(), cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $ty::poll_write_vectored(self.get_mut(), cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
    };
}

pub(crate) use stream_task_io;
