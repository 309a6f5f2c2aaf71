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
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    keep_alive: bool,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// A server of `handler`, keep-alive on, no header timeout.
    pub fn new(handler: impl Handler) -> Server {
        Server {
            handler: Arc::new(handler),
            read_header_timeout: None,
            read_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            keep_alive: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves HTTPS with `config` (Go's `ServeTLS`; feature `tls`): every accepted connection
    /// does the TLS handshake first (within the header timeout, if one is set), and speaks
    /// HTTP/2 if the client chose `h2` by ALPN, HTTP/1.1 otherwise.
    /// [`tls::server_config`](super::tls::server_config) reads a certificate and key from PEM
    /// files, with ALPN set.
    ///
    /// ```no_run
    /// use gort::http::{tls, Body, Response, Server};
    /// gort::run(|| {
    ///     let ln = gort::net::TcpListener::bind("127.0.0.1:8443").unwrap();
    ///     let cfg = tls::server_config("cert.pem", "key.pem").unwrap();
    ///     Server::new(|_req: gort::http::Request| Response::new(Body::from("hello\n")))
    ///         .tls(cfg)
    ///         .serve(ln)
    ///         .unwrap();
    /// });
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Server {
        self.tls = Some(config);
        self
    }

    /// Closes a connection whose next request's head has not fully arrived within `d` (Go's
    /// `ReadHeaderTimeout`): slow or idle clients do not hold connections for ever. Unlike Go,
    /// [`read_timeout`](Server::read_timeout) does not stand in for it when it is not set
    /// (nor for the idle timeout): only a TLS handshake is bounded by the smallest of the
    /// three, as in Go.
    pub fn read_header_timeout(mut self, d: Duration) -> Server {
        self.read_header_timeout = Some(d);
        self
    }

    /// Bounds the reading of each request's body (Go's `ReadTimeout`, whose head part is
    /// [`read_header_timeout`](Server::read_header_timeout) here): from the moment the
    /// request's head has been read, the body must arrive within `d`, or the reads fail (a
    /// handler reading the body gets the error) and the connection closes. The deadline is
    /// lifted at the body's end (a handler may take longer than `d` to answer), or when the
    /// handler is done if it did not read the body to its end. HTTP/1 connections only, for
    /// the reason [`write_timeout`](Server::write_timeout) gives.
    pub fn read_timeout(mut self, d: Duration) -> Server {
        self.read_timeout = Some(d);
        self
    }

    /// Bounds the writing of each response (Go's `WriteTimeout`): from the moment the
    /// request's head has been read, the response must be written within `d`, or the
    /// connection's writes fail and it closes (the client sees it closed, as with Go). A slow
    /// handler counts against it, as in Go. HTTP/1 connections only: on HTTP/2 the
    /// connection's streams share one socket, whose write deadline cannot be one request's.
    pub fn write_timeout(mut self, d: Duration) -> Server {
        self.write_timeout = Some(d);
        self
    }

    /// Closes a keep-alive connection that has had no request in flight for `d` since its
    /// last one (Go's `IdleTimeout`), gracefully: hyper closes it if it is between requests,
    /// or after the request it is reading. HTTP/2 connections get a GOAWAY. As in Go, a new
    /// connection's wait for its first request is bounded by the header timeout
    /// ([`read_header_timeout`](Server::read_header_timeout)), not by this; and with a header
    /// timeout set, an HTTP/1 connection waiting for its next request's head is bound by that
    /// one too (hyper starts it as soon as it waits).
    pub fn idle_timeout(mut self, d: Duration) -> Server {
        self.idle_timeout = Some(d);
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
                        read_timeout: self.read_timeout,
                        write_timeout: self.write_timeout,
                        idle_timeout: self.idle_timeout,
                        keep_alive: self.keep_alive,
                        #[cfg(feature = "tls")]
                        tls: self.tls.clone(),
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

impl Server {
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("read_header_timeout", &self.read_header_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("tls", &self.is_tls())
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

/// Go's `http.ListenAndServeTLS`: binds `addr` and serves `handler` over TLS with the
/// certificate chain in `cert_file` and the key in `key_file` (PEM) until an error (feature
/// `tls`).
///
/// ```no_run
/// use gort::http::{Body, Response};
/// gort::run(|| {
///     gort::http::listen_and_serve_tls("127.0.0.1:8443", "cert.pem", "key.pem", |_req| {
///         Response::new(Body::from("hello\n"))
///     })
///     .unwrap();
/// });
/// ```
#[cfg(feature = "tls")]
#[track_caller]
pub fn listen_and_serve_tls(
    addr: impl std::net::ToSocketAddrs,
    cert_file: impl AsRef<std::path::Path>,
    key_file: impl AsRef<std::path::Path>,
    handler: impl Handler,
) -> io::Result<()> {
    let cfg = super::tls::server_config(cert_file, key_file)?;
    let ln = TcpListener::bind(addr)?;
    Server::new(handler).tls(cfg).serve(ln)
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
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    keep_alive: bool,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Conn {
    /// The connection's goroutine: hyper's connection future in `block_on`, shut down
    /// gracefully when the server is.
    fn run(self, stream: crate::net::TcpStream) {
        // The socket, for the per-request deadlines (the handle shares the `Io`'s socket).
        let sock = (self.read_timeout.is_some() || self.write_timeout.is_some())
            .then(|| stream.try_clone().ok().map(Arc::new))
            .flatten();
        let (io, h2) = match self.open(stream) {
            Some(opened) => opened,
            None => return, // closed, failed or timed out before a request
        };
        // Requests in flight are counted only for the idle timer.
        let activity = self.idle_timeout.map(|_| Arc::new(Activity::new()));
        let conn = if h2 {
            // HTTP/2 (over TLS by ALPN, or h2c with prior knowledge): streams are
            // multiplexed, so every request gets a goroutine of its own (`Svc::inline` off).
            let svc = Svc {
                handler: self.handler.clone(),
                peer: self.peer,
                inline: false,
                deadlines: None,
                activity: activity.clone(),
            };
            let mut b = hyper::server::conn::http2::Builder::new(Exec);
            b.timer(Timer);
            AnyConn::H2(Box::pin(b.serve_connection(io, svc)))
        } else {
            let svc = Svc {
                handler: self.handler.clone(),
                peer: self.peer,
                inline: true,
                deadlines: sock.map(|sock| Deadlines {
                    read: self.read_timeout,
                    write: self.write_timeout,
                    sock,
                }),
                activity: activity.clone(),
            };
            let mut b = hyper::server::conn::http1::Builder::new();
            b.keep_alive(self.keep_alive).timer(Timer);
            if let Some(t) = self.read_header_timeout {
                b.header_read_timeout(t);
            } else {
                b.header_read_timeout(None);
            }
            AnyConn::H1(Box::pin(b.serve_connection(io, svc)))
        };
        let id = self.shutdown.ids.fetch_add(1, Ordering::Relaxed);
        let task = ConnTask {
            conn,
            shutdown: self.shutdown.clone(),
            id,
            graceful: false,
            idle: self.idle_timeout.zip(activity).map(|(d, activity)| Idle {
                timeout: d,
                sleep: crate::time::Sleep::new(d),
                activity,
            }),
        };
        // Connection errors (a reset, a malformed request answered with 400 by hyper, a
        // header timeout) end the connection; nothing to report, as net/http logs nothing.
        let _ = crate::block_on(task);
        self.shutdown.forget(id);
    }
}

impl Conn {
    /// The connection's stream and whether it speaks HTTP/2: for TLS, after the handshake
    /// (ALPN decides); for plain TCP, by the preface an h2c client sends first. `None` when
    /// it closed, failed, timed out or the server shut down first.
    fn open(&self, stream: crate::net::TcpStream) -> Option<(Io, bool)> {
        #[cfg(feature = "tls")]
        if let Some(cfg) = &self.tls {
            let mut tls = super::tls::TlsStream::server(stream, cfg.clone()).ok()?;
            let id = self.shutdown.ids.fetch_add(1, Ordering::Relaxed);
            let shutdown = &self.shutdown;
            let done = crate::block_on(super::io::Race {
                fut: super::tls::Handshake(&mut tls),
                stop: |cx: &mut Context<'_>| shutdown.poll_triggered(id, cx.waker()),
                // Go: the smallest of the header, read and write timeouts that is set.
                sleep: [
                    self.read_header_timeout,
                    self.read_timeout,
                    self.write_timeout,
                ]
                .into_iter()
                .flatten()
                .min()
                .map(crate::time::Sleep::new),
            });
            self.shutdown.forget(id);
            // A failed handshake (a plain-HTTP client, an unknown CA) closes the connection;
            // Go logs it as "http: TLS handshake error", which is noise gort leaves out.
            done?.ok()?;
            let h2 = tls.is_h2();
            return Some((Io::Tls(Box::new(tls)), h2));
        }
        let h2 = is_h2c(&stream, self.read_header_timeout, &self.shutdown)?;
        Some((Io::Plain(stream), h2))
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
    let mut backoff = Duration::from_millis(1);
    let mut buf = [0u8; 24];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let r = loop {
        match stream.peek(&mut buf) {
            Ok(0) => break None,
            // A prefix of the preface: wait for the rest (a peek returns what is there at
            // once, so the wait is a sleep).
            Ok(n) if n < H2_PREFACE.len() && buf[..n] == H2_PREFACE[..n] => {
                crate::time::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
            Ok(n) => break Some(buf[..n] == H2_PREFACE[..]),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(_) => break None,
        }
        // A silent client, and one that stops part-way through the preface, are bound by the
        // header timeout and the shutdown.
        if shutdown.is_triggered() || timeout.is_some_and(|t| start.elapsed() >= t) {
            break None;
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

/// A connection, the server's shutdown signal it watches, and its idle timer.
struct ConnTask {
    conn: AnyConn,
    shutdown: Arc<Shutdown>,
    id: u64,
    graceful: bool,
    idle: Option<Idle>,
}

/// Requests in flight on a connection, and when the last one ended (for its idle timer).
struct Activity {
    inflight: AtomicU64,
    /// When the last request ended, in nanoseconds since `epoch`; 0: none yet.
    last_end: AtomicU64,
    /// The connection's start.
    epoch: std::time::Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            inflight: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }
}

/// A request in flight, from the handler's call until its response future is dropped
/// (answered, or the connection or stream gone): counted for the idle timer, if there is
/// one; and the request's read deadline, if it has one, is lifted at the end.
struct Busy {
    activity: Option<Arc<Activity>>,
    read_deadline: Option<Arc<crate::net::TcpStream>>,
}

impl Busy {
    fn new(activity: Option<&Arc<Activity>>) -> Busy {
        if let Some(a) = activity {
            a.inflight.fetch_add(1, Ordering::Relaxed);
        }
        Busy {
            activity: activity.cloned(),
            read_deadline: None,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(sock) = &self.read_deadline {
            let _ = sock.set_read_deadline(None);
        }
        if let Some(a) = &self.activity {
            let now = a.epoch.elapsed().as_nanos() as u64;
            a.last_end.store(now.max(1), Ordering::Relaxed);
            a.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The idle timer of a connection (`Server::idle_timeout`).
struct Idle {
    timeout: Duration,
    sleep: crate::time::Sleep,
    activity: Arc<Activity>,
}

impl Idle {
    /// Whether the connection has been idle for the timeout; if not, the timer is set for
    /// when it could first be (polled, so that it wakes the connection).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while Pin::new(&mut self.sleep).poll(cx).is_ready() {
            let a = &self.activity;
            let next = if a.inflight.load(Ordering::Relaxed) > 0
                || a.last_end.load(Ordering::Relaxed) == 0
            {
                // A request in flight, or none yet (the first request's wait is the header
                // timeout's, as in Go): look again a timeout later.
                self.timeout
            } else {
                let idle = a
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(a.last_end.load(Ordering::Relaxed)));
                match self.timeout.checked_sub(idle) {
                    Some(left) if !left.is_zero() => left,
                    _ => return true,
                }
            };
            self.sleep = crate::time::Sleep::new(next);
        }
        false
    }
}

impl Future for ConnTask {
    type Output = hyper::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        let this = &mut *self;
        if !this.graceful {
            let idle = this.idle.as_mut().is_some_and(|i| i.poll_expired(cx));
            if idle || this.shutdown.poll_triggered(this.id, cx.waker()) {
                this.graceful = true;
                this.conn.graceful_shutdown();
            }
        }
        this.conn.poll(cx)
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
    /// `Server::read_timeout` / `write_timeout` and the connection's socket (HTTP/1 only).
    deadlines: Option<Deadlines>,
    /// The connection's requests in flight, when it has an idle timer.
    activity: Option<Arc<Activity>>,
}

/// The per-request deadlines of an HTTP/1 connection.
#[derive(Clone)]
struct Deadlines {
    read: Option<Duration>,
    write: Option<Duration>,
    sock: Arc<crate::net::TcpStream>,
}

/// A handler's response: answered already (it ran on the connection's goroutine), or to
/// come from the request's goroutine (whose context is cancelled when this is dropped: the
/// response went out, or the connection or the HTTP/2 stream is gone).
struct RespFuture {
    state: RespState,
    /// Cancels the request's context when dropped (a handler on its own goroutine).
    _cancel: Option<CancelOnDrop>,
    /// The request is in flight until this drops.
    _busy: Busy,
}

enum RespState {
    Ready(Option<Response>),
    Waiting(Receiver<Response>),
}

/// Cancels a request's context when dropped.
struct CancelOnDrop(crate::context::CancelFunc);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Future for RespFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response, Infallible>> {
        match &mut self.get_mut().state {
            RespState::Ready(r) => Poll::Ready(Ok(r.take().unwrap_or_else(|| status(500)))),
            RespState::Waiting(rx) => Pin::new(rx)
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
        // Go's `r.Context()`: cancelled when the handler is done, or before if the client
        // goes away (the connection closes, or its HTTP/2 stream is reset) while it runs on
        // a goroutine of its own.
        let (ctx, cancel) = crate::context::with_cancel(&crate::context::background());
        parts.extensions.insert(ctx);
        let mut busy = Busy::new(self.activity.as_ref());
        let bodiless = http_body::Body::is_end_stream(&incoming);
        if let Some(dl) = &self.deadlines {
            let now = std::time::Instant::now();
            if let Some(d) = dl.write {
                // Go's WriteTimeout: from the end of the request's head to the end of the
                // response; the next request on the connection sets it anew.
                let _ = dl.sock.set_write_deadline(Some(now + d));
            }
            if let Some(d) = dl.read.filter(|_| !bodiless) {
                // Go's ReadTimeout, past the head: the body's reads (a bodiless request has
                // none). Lifted at the body's end (below), or when the handler is done
                // (`Busy`) if it never read it all.
                let _ = dl.sock.set_read_deadline(Some(now + d));
                busy.read_deadline = Some(dl.sock.clone());
            }
        }
        // The read deadline is lifted as soon as the body has been read to its end: hyper then
        // reads on to notice a client that leaves, and a deadline that fired there would
        // end the connection and lose the handler's response (Go's background read only
        // cancels the request's context).
        let lift: Option<Box<dyn FnOnce() + Send>> = busy.read_deadline.clone().map(|sock| {
            Box::new(move || {
                let _ = sock.set_read_deadline(None);
            }) as Box<dyn FnOnce() + Send>
        });
        let req = http::Request::from_parts(parts, Body::incoming_then(incoming, lift));
        if bodiless && self.inline {
            // Go's model: the handler runs on the connection's goroutine. With no body to
            // receive, nothing needs the connection polled meanwhile (the next pipelined
            // request waits for this response anyway), and the request costs no goroutine
            // and no switch.
            let resp = serve_one(&*self.handler, req, self.peer);
            cancel.cancel();
            return RespFuture {
                state: RespState::Ready(resp),
                _cancel: None,
                _busy: busy,
            };
        }
        // A body: the handler reads it while this goroutine keeps the connection going.
        let (tx, rx) = Oneshot::new();
        let (handler, peer) = (self.handler.clone(), self.peer);
        crate::go!(move || {
            tx.send(serve_one(&*handler, req, peer).unwrap_or_else(|| status(500)));
        });
        RespFuture {
            state: RespState::Waiting(rx),
            _cancel: Some(CancelOnDrop(cancel)),
            _busy: busy,
        }
    }
}

/// A request's context (Go's `r.Context()`): the [`Context`](crate::context::Context) in its
/// extensions, or a background context if it has none.
///
/// On the server, every request has one. It is cancelled when the handler has returned, and
/// before that when the client goes away while the handler runs on a goroutine of its own
/// (any request with a body, every HTTP/2 request): its connection closed (noticed once the
/// body has been read, as hyper then watches the socket) or its HTTP/2 stream was reset. A
/// handler that waits on something slow selects on `ctx.done()` to give up with its client.
/// A bodiless HTTP/1 request runs on the connection's goroutine, which reads nothing while
/// the handler runs: its context ends only with the handler.
///
/// For the client, a context inserted in a request's extensions bounds the request (see
/// [`Client::request`](super::Client::request)).
///
/// ```
/// use gort::http::{Body, Request, Response};
/// fn slow(req: Request) -> Response {
///     let ctx = gort::http::context(&req);
///     gort::select! {
///         recv(ctx.done()) -> _ => Response::new(Body::from("client gone")),
///         recv(gort::time::after(std::time::Duration::from_millis(10))) -> _ => {
///             Response::new(Body::from("done"))
///         }
///     }
/// }
/// ```
pub fn context(req: &Request) -> crate::context::Context {
    req.extensions()
        .get::<crate::context::Context>()
        .cloned()
        .unwrap_or_else(crate::context::background)
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
