//! [`Body`]: the body of a request or a response, readable with `std::io::Read` from
//! goroutine code (a handler reads its request's, a client its response's) and an
//! `http_body::Body` for hyper (which writes a response's or a request's).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use bytes::{Buf, Bytes};
use http_body::{Body as _, Frame, SizeHint};

/// A body: nothing, bytes in memory, a reader streamed in chunks, or what arrives on a
/// connection.
///
/// Read it with `std::io::Read` (the goroutine parks while the connection's goroutine
/// receives more); build one with `From` (`String`, `Vec<u8>`, `&'static str`, `Bytes`) or
/// [`Body::from_reader`] for a streaming response.
///
/// ```
/// use std::io::Read;
/// let mut b = gort::http::Body::from("hello");
/// let mut s = String::new();
/// b.read_to_string(&mut s).unwrap();
/// assert_eq!(s, "hello");
/// ```
pub struct Body {
    kind: Kind,
    /// Trailers: to send after the data ([`Body::with_trailers`]), or received after it (an
    /// incoming body read to its end through `Read`; [`Body::trailers`]).
    trailers: Option<Box<http::HeaderMap>>,
}

enum Kind {
    Empty,
    Full(Bytes),
    Reader(Box<dyn Read + Send>),
    /// A reader being pumped by a goroutine of its own (`poll_frame` of a `Reader`), and the
    /// rest of the chunk a `read` took part of.
    Piped(Arc<Pipe>, Bytes),
    Incoming {
        incoming: hyper::body::Incoming,
        /// The rest of the last data frame, for `Read`.
        buf: Bytes,
        /// Runs when the body was read to its end (a client's connection goes back to its
        /// pool); dropped unrun otherwise.
        done: Option<Box<dyn FnOnce() + Send>>,
    },
}

/// How much a streamed reader's body sends per frame.
const CHUNK: usize = 16 << 10;

/// Chunks a pump may read ahead of the connection.
const AHEAD: usize = 2;

/// Between a reader's pump goroutine and the connection that sends what it reads: the
/// connection (in `block_on`) must never block in the reader itself, which may wait for the
/// very connection (an echo handler streams its request body back).
pub(crate) struct Pipe {
    state: Mutex<PipeState>,
}

struct PipeState {
    chunks: VecDeque<io::Result<Bytes>>,
    /// The pump is done (end of the reader, an error, or the pump went away).
    ended: bool,
    /// The connection dropped the body: the pump stops.
    dropped: bool,
    /// The connection, waiting for a chunk.
    taker: Option<Waker>,
    /// The pump, waiting for room.
    pump: Option<Waker>,
}

impl Pipe {
    fn start(mut r: Box<dyn Read + Send>) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe {
            state: Mutex::new(PipeState {
                chunks: VecDeque::new(),
                ended: false,
                dropped: false,
                taker: None,
                pump: None,
            }),
        });
        let p = pipe.clone();
        crate::go!(move || {
            loop {
                // Wait for room (or the body's drop).
                let go_on = crate::block_on(std::future::poll_fn(|cx| {
                    let mut s = p.state.lock();
                    if s.dropped {
                        Poll::Ready(false)
                    } else if s.chunks.len() < AHEAD {
                        Poll::Ready(true)
                    } else {
                        s.pump = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }));
                if !go_on {
                    return;
                }
                let mut chunk = vec![0u8; CHUNK];
                let item = match r.read(&mut chunk) {
                    Ok(0) => None,
                    Ok(n) => {
                        chunk.truncate(n);
                        Some(Ok(Bytes::from(chunk)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Some(Err(e)),
                };
                let (last, w) = {
                    let mut s = p.state.lock();
                    let last = !matches!(item, Some(Ok(_)));
                    if let Some(i) = item {
                        s.chunks.push_back(i);
                    }
                    s.ended |= last;
                    (last, s.taker.take())
                };
                if let Some(w) = w {
                    w.wake();
                }
                if last {
                    return;
                }
            }
        });
        pipe
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let (item, w) = {
            let mut s = self.state.lock();
            match s.chunks.pop_front() {
                Some(c) => (Some(c), s.pump.take()),
                None if s.ended => return Poll::Ready(None),
                None => {
                    s.taker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        if let Some(w) = w {
            w.wake();
        }
        Poll::Ready(item)
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Kind::Piped(p, _) = &self.kind {
            let w = {
                let mut s = p.state.lock();
                s.dropped = true;
                s.pump.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body {
            kind: Kind::Empty,
            trailers: None,
        }
    }

    /// A body streamed from `r` as it reads (chunked transfer encoding, unless the response
    /// sets a `Content-Length`). `r` is read on the connection's goroutine, which may park in
    /// it (a channel receive, a socket read): a handler can stream what it produces.
    ///
    /// ```
    /// use std::io::Read;
    /// let mut b = gort::http::Body::from_reader(std::io::Cursor::new(vec![7u8; 3]));
    /// let mut v = Vec::new();
    /// b.read_to_end(&mut v).unwrap();
    /// assert_eq!(v, [7, 7, 7]);
    /// ```
    pub fn from_reader(r: impl Read + Send + 'static) -> Body {
        Body {
            kind: Kind::Reader(Box::new(r)),
            trailers: None,
        }
    }

    /// A body arriving on a connection, and what to do once it was read to its end.
    pub(crate) fn incoming_then(
        incoming: hyper::body::Incoming,
        done: Option<Box<dyn FnOnce() + Send>>,
    ) -> Body {
        let mut b = Body {
            kind: Kind::Incoming {
                incoming,
                buf: Bytes::new(),
                done,
            },
            trailers: None,
        };
        if http_body::Body::is_end_stream(&b) {
            b.finished();
        }
        b
    }

    /// The end of an incoming body was reached.
    fn finished(&mut self) {
        if let Kind::Incoming { done, .. } = &mut self.kind {
            if let Some(f) = done.take() {
                f();
            }
        }
    }

    /// Reads the whole body into memory.
    ///
    /// ```
    /// let b = gort::http::Body::from(vec![1u8, 2]);
    /// assert_eq!(b.bytes().unwrap(), &[1u8, 2][..]);
    /// ```
    pub fn bytes(mut self) -> io::Result<Bytes> {
        if let Kind::Full(b) = &mut self.kind {
            return Ok(std::mem::take(b));
        }
        let mut v = Vec::new();
        self.read_to_end(&mut v)?;
        Ok(v.into())
    }

    /// Reads the whole body as UTF-8 text.
    pub fn text(self) -> io::Result<String> {
        String::from_utf8(self.bytes()?.into())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl Body {
    /// This body, followed by `trailers` (Go: the `Trailer` header and `w.Header()` set after
    /// the body). HTTP/2 always sends them; hyper sends HTTP/1 trailers only in a chunked
    /// body (no `Content-Length`) to a request that said `TE: trailers`, and only the fields
    /// the response's `Trailer` header announces.
    ///
    /// ```
    /// let mut t = gort::http::types::HeaderMap::new();
    /// t.insert("x-checksum", "0123".parse().unwrap());
    /// let b = gort::http::Body::from("data").with_trailers(t);
    /// ```
    pub fn with_trailers(mut self, trailers: http::HeaderMap) -> Body {
        self.trailers = Some(Box::new(trailers));
        self
    }

    /// The trailers that came after an incoming body, once it has been read to its end
    /// through `Read` (Go's `r.Trailer` after reading `r.Body` to EOF); `None` before that,
    /// or if none came. On a body built here, the trailers it will send.
    pub fn trailers(&self) -> Option<&http::HeaderMap> {
        self.trailers.as_deref()
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "bytes",
            Kind::Reader(_) | Kind::Piped(..) => "reader",
            Kind::Incoming { .. } => "incoming",
        };
        f.debug_struct("Body").field("kind", &kind).finish()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body {
            kind: Kind::Full(b),
            trailers: None,
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Bytes::from(v).into()
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Bytes::from_static(s).into()
    }
}

impl Read for Body {
    /// Reads what is there; for a body arriving on a connection, parks the goroutine until
    /// more comes (the connection's goroutine receives it), and fails if the connection
    /// failed.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Empty => Ok(0),
            Kind::Full(b) => {
                let n = out.len().min(b.len());
                b.copy_to_slice(&mut out[..n]);
                Ok(n)
            }
            Kind::Reader(r) => r.read(out),
            Kind::Piped(p, buf) => {
                if buf.is_empty() {
                    match crate::block_on(std::future::poll_fn(|cx| p.poll_take(cx))) {
                        None => return Ok(0),
                        Some(Err(e)) => return Err(e),
                        Some(Ok(b)) => *buf = b,
                    }
                }
                let n = out.len().min(buf.len());
                buf.copy_to_slice(&mut out[..n]);
                Ok(n)
            }
            Kind::Incoming { incoming, buf, .. } => loop {
                if !buf.is_empty() {
                    let n = out.len().min(buf.len());
                    buf.copy_to_slice(&mut out[..n]);
                    return Ok(n);
                }
                let next = crate::block_on(std::future::poll_fn(|cx| {
                    Pin::new(&mut *incoming).poll_frame(cx)
                }));
                match next {
                    None => {
                        self.finished();
                        return Ok(0);
                    }
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => *buf = data,
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                self.trailers = Some(Box::new(t));
                            }
                        }
                    },
                }
            },
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let r = this.poll_data(cx);
        if let Poll::Ready(None) = r {
            if !matches!(this.kind, Kind::Incoming { .. }) {
                if let Some(t) = this.trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(*t))));
                }
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none() && self.data_ended()
    }

    fn size_hint(&self) -> SizeHint {
        self.data_size_hint()
    }
}

impl Body {
    /// `poll_frame` without this body's own trailers (an incoming body's pass through).
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self;
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => {
                if b.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(b)))))
                }
            }
            // Read by a goroutine of its own (see `Pipe`).
            Kind::Reader(_) => {
                let Kind::Reader(r) = std::mem::replace(&mut this.kind, Kind::Empty) else {
                    unreachable!("matched above")
                };
                this.kind = Kind::Piped(Pipe::start(r), Bytes::new());
                this.poll_data(cx)
            }
            Kind::Piped(p, buf) => {
                if !buf.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(buf)))));
                }
                p.poll_take(cx).map(|o| o.map(|r| r.map(Frame::data)))
            }
            Kind::Incoming { incoming, buf, .. } => {
                if !buf.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(std::mem::take(buf)))));
                }
                let r = Pin::new(incoming).poll_frame(cx).map_err(io::Error::other);
                if let Poll::Ready(None) = r {
                    this.finished();
                }
                r
            }
        }
    }

    fn data_ended(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_empty(),
            Kind::Reader(_) | Kind::Piped(..) => false,
            Kind::Incoming { incoming, buf, .. } => buf.is_empty() && incoming.is_end_stream(),
        }
    }

    fn data_size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.len() as u64),
            Kind::Reader(_) | Kind::Piped(..) => SizeHint::default(),
            Kind::Incoming { incoming, buf, .. } => {
                let h = incoming.size_hint();
                let mut s = SizeHint::new();
                s.set_lower(h.lower() + buf.len() as u64);
                if let Some(u) = h.upper() {
                    s.set_upper(u + buf.len() as u64);
                }
                s
            }
        }
    }
}
