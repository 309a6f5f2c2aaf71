//! The server: a goroutine per connection drives hyper's HTTP/1 connection (in `block_on`);
//! the handler, free to block, park, `defer!` and `recover`, runs on that goroutine for a
//! request without a body and on a goroutine of its own for one with a body (which the
//! connection's goroutine receives meanwhile).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use super::body::Body;
use super::io::{Exec, Io, Timer};
use super::oneshot::{Oneshot, Receiver};
use super::{Request, Response};
use crate::net::TcpListener;

/// What serves requests: a function or closure from [`Request`] to [`Response`], run in a
/// goroutine of its own per request (Go's `http.Handler`, returning the response instead of
/// writing it).
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn serve(&self, req: Request) -> Response;
}

impl<F> Handler for F
where
    F: Fn(Request) -> Response + Send + Sync + 'static,
{
    fn serve(&self, req: Request) -> Response {
        self(req)
    }
}

/// An HTTP/1.1 and h2c server (Go's `http.Server`): keep-alive and pipelining (hyper's), HTTP/2
/// for clients with prior knowledge, a goroutine
/// per connection (and one per request that has a body), a 500 for a handler that panics
/// (logged with net/http's line), a header read timeout, and graceful shutdown driven by a
/// [`crate::context`].
///
/// ```
/// use gort::http::{Body, Response, Server};
/// use std::io::{Read, Write};
///
/// gort::run(|| {
///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
///     let server = Server::new(|req: gort::http::Request| {
///         Response::new(Body::from(format!("hello, {}", req.uri().path())))
///     });
///     let done = gort::spawn(move || server.serve_until(ln, &ctx));
///
///     let resp = gort::http::get(&format!("http://{addr}/gopher")).unwrap();
///     assert_eq!(resp.into_body().text().unwrap(), "hello, /gopher");
///
///     cancel.cancel(); // graceful shutdown: stop accepting, finish what is in flight
///     done.join().unwrap();
/// });
/// ```
pub struct Server {
    handler: Arc<dyn Handler>,
    read_header_timeout: Option<Duration>,
    keep_alive: bool,
}

impl Server {
    /// A server of `handler`, keep-alive on, no header timeout.
    pub fn new(handler: impl Handler) -> Server {
        Server {
            handler: Arc::new(handler),
            read_header_timeout: None,
            keep_alive: true,
        }
    }

    /// Closes a connection whose next request's head has not fully arrived within `d` (Go's
    /// `ReadHeaderTimeout`): slow or idle clients do not hold connections for ever.
    pub fn read_header_timeout(mut self, d: Duration) -> Server {
        self.read_header_timeout = Some(d);
        self
    }

    /// Whether connections stay open between requests (on by default; Go's
    /// `SetKeepAlivesEnabled`).
    pub fn keep_alive(mut self, on: bool) -> Server {
        self.keep_alive = on;
        self
    }

    /// Serves connections accepted from `ln` until accepting fails (the listener was
    /// closed); returns that error.
    #[track_caller]
    pub fn serve(&self, ln: TcpListener) -> io::Result<()> {
        let ctx = crate::context::background();
        self.serve_until(ln, &ctx)
    }

    /// Serves until `ctx` is done, then shuts down gracefully (Go's `Server.Shutdown`): stops
    /// accepting, lets each connection finish the request it is in (idle ones close at once),
    /// waits for them, and returns `Ok`. An accept error before that is returned as is.
    #[track_caller]
    pub fn serve_until(&self, ln: TcpListener, ctx: &crate::context::Context) -> io::Result<()> {
        let ln = Arc::new(ln);
        let shutdown = Arc::new(Shutdown::default());
        let conns = crate::WaitGroup::new();
        // The watcher: at the context's end, close the listener (the accept below fails)
        // and tell every connection.
        let stop: crate::Chan<()> = crate::Chan::new(0);
        {
            let (ln, shutdown, ctx, stop) =
                (ln.clone(), shutdown.clone(), ctx.clone(), stop.clone());
            crate::go!(move || {
                crate::select! {
                    recv(ctx.done()) -> _ => {},
                    recv(stop) -> _ => {},
                }
                shutdown.trigger();
                ln.close();
            });
        }
        let result = loop {
            match ln.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true); // Go's default
                    conns.add(1);
                    let conn = Conn {
                        handler: self.handler.clone(),
                        peer,
                        shutdown: shutdown.clone(),
                        read_header_timeout: self.read_header_timeout,
                        keep_alive: self.keep_alive,
                    };
                    let wg = conns.clone();
                    crate::go!(move || {
                        // Deferred: a handler on this goroutine may `goexit`.
                        crate::defer!(wg.done());
                        conn.run(stream);
                    });
                }
                Err(_) if shutdown.is_triggered() => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        stop.close();
        shutdown.trigger();
        conns.wait();
        result
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("read_header_timeout", &self.read_header_timeout)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

/// Go's `http.ListenAndServe`: binds `addr` and serves `handler` on it until an error.
///
/// ```no_run
/// use gort::http::{Body, Response};
/// gort::run(|| {
///     gort::http::listen_and_serve("127.0.0.1:8080", |_req: gort::http::Request| {
///         Response::new(Body::from("hello\n"))
///     })
///     .unwrap();
/// });
/// ```
#[track_caller]
pub fn listen_and_serve(
    addr: impl std::net::ToSocketAddrs,
    handler: impl Handler,
) -> io::Result<()> {
    let ln = TcpListener::bind(addr)?;
    Server::new(handler).serve(ln)
}

/// The shutdown signal every connection of a server watches.
#[derive(Default)]
struct Shutdown {
    state: Mutex<(bool, HashMap<u64, Waker>)>,
    ids: AtomicU64,
}

impl Shutdown {
    fn trigger(&self) {
        let wakers = {
            let mut s = self.state.lock();
            s.0 = true;
            std::mem::take(&mut s.1)
        };
        for w in wakers.into_values() {
            w.wake();
        }
    }

    fn is_triggered(&self) -> bool {
        self.state.lock().0
    }

    /// Whether it triggered; if not, `waker` (of connection `id`) is woken when it does.
    fn poll_triggered(&self, id: u64, waker: &Waker) -> bool {
        let mut s = self.state.lock();
        if s.0 {
            return true;
        }
        s.1.insert(id, waker.clone());
        false
    }

    fn forget(&self, id: u64) {
        self.state.lock().1.remove(&id);
    }
}

/// One connection's settings.
struct Conn {
    handler: Arc<dyn Handler>,
    peer: SocketAddr,
    shutdown: Arc<Shutdown>,
    read_header_timeout: Option<Duration>,
    keep_alive: bool,
}

impl Conn {
    /// The connection's goroutine: hyper's connection future in `block_on`, shut down
    /// gracefully when the server is.
    fn run(self, stream: crate::net::TcpStream) {
        let h2 = match is_h2c(&stream, self.read_header_timeout, &self.shutdown) {
            Some(h2) => h2,
            None => return, // closed, failed or timed out before a request
        };
        let conn = if h2 {
            // HTTP/2 with prior knowledge (h2c): streams are multiplexed, so every request
            // gets a goroutine of its own (`Svc::inline` off).
            let svc = Svc {
                handler: self.handler.clone(),
                peer: self.peer,
                inline: false,
            };
            let mut b = hyper::server::conn::http2::Builder::new(Exec);
            b.timer(Timer);
            AnyConn::H2(Box::pin(b.serve_connection(Io(stream), svc)))
        } else {
            let svc = Svc {
                handler: self.handler.clone(),
                peer: self.peer,
                inline: true,
            };
            let mut b = hyper::server::conn::http1::Builder::new();
            b.keep_alive(self.keep_alive).timer(Timer);
            if let Some(t) = self.read_header_timeout {
                b.header_read_timeout(t);
            } else {
                b.header_read_timeout(None);
            }
            AnyConn::H1(Box::pin(b.serve_connection(Io(stream), svc)))
        };
        let id = self.shutdown.ids.fetch_add(1, Ordering::Relaxed);
        let task = ConnTask {
            conn,
            shutdown: self.shutdown.clone(),
            id,
            graceful: false,
        };
        // Connection errors (a reset, a malformed request answered with 400 by hyper, a
        // header timeout) end the connection; nothing to report, as net/http logs nothing.
        let _ = crate::block_on(task);
        self.shutdown.forget(id);
    }
}

/// HTTP/2's connection preface, which an h2c client with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the connection starts with HTTP/2's preface (peeked, not consumed); `None` when it
/// closed, failed, sent nothing within `timeout`, or the server shut down first (an idle new
/// connection must not hold up a graceful shutdown: the peek wakes every 100 ms to look).
fn is_h2c(
    stream: &crate::net::TcpStream,
    timeout: Option<Duration>,
    shutdown: &Shutdown,
) -> Option<bool> {
    let start = std::time::Instant::now();
    let mut buf = [0u8; 24];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let r = loop {
        match stream.peek(&mut buf) {
            Ok(0) => break None,
            // A prefix of the preface: wait for the rest (a peek returns what is there).
            Ok(n) if n < H2_PREFACE.len() && buf[..n] == H2_PREFACE[..n] => {
                crate::time::sleep(Duration::from_millis(1));
            }
            Ok(n) => break Some(buf[..n] == H2_PREFACE[..]),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if shutdown.is_triggered() || timeout.is_some_and(|t| start.elapsed() >= t) {
                    break None;
                }
            }
            Err(_) => break None,
        }
    };
    let _ = stream.set_read_timeout(None);
    r
}

type H1Conn = hyper::server::conn::http1::Connection<Io, Svc>;
type H2Conn = hyper::server::conn::http2::Connection<Io, Svc, Exec>;

/// A connection of either protocol.
enum AnyConn {
    H1(Pin<Box<H1Conn>>),
    H2(Pin<Box<H2Conn>>),
}

impl AnyConn {
    fn graceful_shutdown(&mut self) {
        match self {
            AnyConn::H1(c) => c.as_mut().graceful_shutdown(),
            AnyConn::H2(c) => c.as_mut().graceful_shutdown(),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        match self {
            AnyConn::H1(c) => c.as_mut().poll(cx),
            AnyConn::H2(c) => c.as_mut().poll(cx),
        }
    }
}

/// A connection, and the server's shutdown signal it watches.
struct ConnTask {
    conn: AnyConn,
    shutdown: Arc<Shutdown>,
    id: u64,
    graceful: bool,
}

impl Future for ConnTask {
    type Output = hyper::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        if !self.graceful && self.shutdown.poll_triggered(self.id, cx.waker()) {
            self.graceful = true;
            self.conn.graceful_shutdown();
        }
        self.conn.poll(cx)
    }
}

/// hyper's service: a request to the handler, on the connection's goroutine or one of its
/// own.
#[derive(Clone)]
struct Svc {
    handler: Arc<dyn Handler>,
    peer: SocketAddr,
    /// A request without a body may run on the connection's goroutine (HTTP/1; HTTP/2's
    /// streams share the connection, so never there).
    inline: bool,
}

/// A handler's response: answered already (it ran on the connection's goroutine), or to
/// come from the request's goroutine.
enum RespFuture {
    Ready(Option<Response>),
    Waiting(Receiver<Response>),
}

impl Future for RespFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response, Infallible>> {
        match self.get_mut() {
            RespFuture::Ready(r) => Poll::Ready(Ok(r.take().unwrap_or_else(|| status(500)))),
            RespFuture::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| Ok(r.unwrap_or_else(|| status(500)))),
        }
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Svc {
    type Response = Response;
    type Error = Infallible;
    type Future = RespFuture;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> RespFuture {
        let (mut parts, incoming) = req.into_parts();
        parts.extensions.insert(RemoteAddr(self.peer));
        let bodiless = http_body::Body::is_end_stream(&incoming);
        let req = http::Request::from_parts(parts, Body::incoming(incoming));
        if bodiless && self.inline {
            // Go's model: the handler runs on the connection's goroutine. With no body to
            // receive, nothing needs the connection polled meanwhile (the next pipelined
            // request waits for this response anyway), and the request costs no goroutine
            // and no switch.
            return RespFuture::Ready(serve_one(&*self.handler, req, self.peer));
        }
        // A body: the handler reads it while this goroutine keeps the connection going.
        let (tx, rx) = Oneshot::new();
        let (handler, peer) = (self.handler.clone(), self.peer);
        crate::go!(move || {
            tx.send(serve_one(&*handler, req, peer).unwrap_or_else(|| status(500)));
        });
        RespFuture::Waiting(rx)
    }
}

/// The client's address, in every request's extensions (Go's `Request.RemoteAddr`).
///
/// ```
/// use gort::http::RemoteAddr;
/// fn who(req: &gort::http::Request) -> String {
///     req.extensions().get::<RemoteAddr>().map(|a| a.0.to_string()).unwrap_or_default()
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// Runs the handler in a frame whose deferred call turns a panic into a 500 and a log line
/// (Go's `http: panic serving ADDR: VALUE`).
#[crate::func]
fn serve_one(handler: &dyn Handler, req: Request, peer: SocketAddr) -> Option<Response> {
    crate::defer!(|r: &mut crate::Named<Option<Response>>| {
        if let Some(p) = crate::recover() {
            eprintln!("http: panic serving {peer}: {p}");
            r.set(Some(status(500)));
        }
    });
    Some(handler.serve(req))
}

/// A response with `code` and its reason phrase as the body.
pub(crate) fn status(code: u16) -> Response {
    let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let text = format!(
        "{} {}\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    );
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
