//! The client: hyper's client connections, each driven by a goroutine of its own, pooled per
//! scheme, host and port (HTTP/1: idle ones; HTTP/2 over TLS: one shared), usable from many
//! goroutines at once (Go's `http.Client`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, OnceLock};
use std::task::Context;
use std::time::Duration;

use parking_lot::Mutex;

use super::body::Body;
use super::io::{Io, Race};
use super::{Request, Response};

type Sender = hyper::client::conn::http1::SendRequest<Body>;
type H2Sender = hyper::client::conn::http2::SendRequest<Body>;

/// A connection a request can go on: an HTTP/1 one, which is the request's alone until its
/// response's body ends, or an HTTP/2 one, shared by every request to its host.
enum Conn {
    H1(Sender),
    H2(H2Sender),
}

/// An HTTP client with a pool of keep-alive connections (Go's `http.Client` with its default
/// transport); clones share the pool. `https://` URLs need the `tls` feature; they trust the
/// system's roots unless [`ClientBuilder::tls`] says otherwise, and speak HTTP/2 where the
/// server chooses it by ALPN (one connection per host, its requests multiplexed), HTTP/1.1
/// otherwise. `http://` is HTTP/1.1.
///
/// A connection goes back to the pool when its response's body has been read to the end (as
/// Go's does); a response dropped unread closes its connection.
///
/// ```
/// use gort::http::{Body, Client, Response, Server};
/// gort::run(|| {
///     let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     gort::go!(move || {
///         let _ = Server::new(|req: gort::http::Request| {
///             let n = req.into_body().bytes().unwrap().len();
///             Response::new(Body::from(format!("{n} bytes")))
///         })
///         .serve(ln);
///     });
///     let c = Client::new();
///     for _ in 0..3 {
///         let r = c.post(&format!("http://{addr}/"), "text/plain", "hello").unwrap();
///         assert_eq!(r.status(), 200);
///         assert_eq!(r.into_body().text().unwrap(), "5 bytes");
///     }
/// });
/// ```
#[derive(Clone, Default)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Idle HTTP/1 connections per `scheme://host:port`.
    idle: Mutex<HashMap<String, Vec<Sender>>>,
    /// The HTTP/2 connection per `https://host:port`, where the server chose `h2`.
    h2: Mutex<HashMap<String, H2Sender>>,
    timeout: Option<Duration>,
    /// `https://`'s configuration; `None`: the system's roots (`tls::client_config`).
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Builds a [`Client`] with a timeout or a TLS configuration (Go: the fields of
/// `http.Client` and its `http.Transport`).
///
/// ```
/// use std::time::Duration;
/// let c = gort::http::Client::builder().timeout(Duration::from_secs(5)).build();
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct ClientBuilder {
    timeout: Option<Duration>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientBuilder {
    /// Requests fail with `TimedOut` when the response's head has not arrived within `d`
    /// of the call (see [`Client::with_timeout`]).
    pub fn timeout(mut self, d: Duration) -> ClientBuilder {
        self.timeout = Some(d);
        self
    }

    /// `https://` URLs use `config` (its roots, its ALPN; feature `tls`) instead of the
    /// system's roots ([`tls::client_config`](super::tls::client_config)).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> ClientBuilder {
        self.tls = Some(config);
        self
    }

    /// The client, with a pool of its own.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                idle: Mutex::new(HashMap::new()),
                h2: Mutex::new(HashMap::new()),
                timeout: self.timeout,
                #[cfg(feature = "tls")]
                tls: self.tls,
            }),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// The client `get` and `post` use (Go's `http.DefaultClient`).
fn default_client() -> &'static Client {
    static C: OnceLock<Client> = OnceLock::new();
    C.get_or_init(Client::new)
}

/// Go's `http.Get` with the default client.
#[track_caller]
pub fn get(url: &str) -> io::Result<Response> {
    default_client().get(url)
}

/// Go's `http.Post` with the default client.
#[track_caller]
pub fn post(url: &str, content_type: &str, body: impl Into<Body>) -> io::Result<Response> {
    default_client().post(url, content_type, body)
}

impl Client {
    /// A client with an empty pool and no timeout.
    pub fn new() -> Client {
        Client::default()
    }

    /// A client whose requests fail with `TimedOut` when the response's head has not arrived
    /// within `d` of the call (Go's `Client.Timeout` covers the body too; here the body's
    /// reads have the connection's own pace). Its pool is a new one. The timer is a
    /// runtime's: use such a client from goroutines (or threads inside `Handle::enter`).
    pub fn with_timeout(d: Duration) -> Client {
        Client::builder().timeout(d).build()
    }

    /// A builder for a client with settings (timeout, TLS).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A GET of `url`.
    #[track_caller]
    pub fn get(&self, url: &str) -> io::Result<Response> {
        let req = http::Request::get(url)
            .body(Body::empty())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.request(req)
    }

    /// A POST of `body` to `url` with `Content-Type: content_type`.
    #[track_caller]
    pub fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> io::Result<Response> {
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body.into())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.request(req)
    }

    /// Sends `req` (its URI absolute: `http://host:port/path`) on a pooled connection or a
    /// new one, and returns the response once its head arrived; read the body from it.
    ///
    /// A [`Context`](crate::context::Context) in the request's extensions is the request's
    /// context (Go's `NewRequestWithContext`): its deadline and its cancel end the connect
    /// and the wait for the response's head with the context's error.
    ///
    /// ```
    /// use gort::context;
    /// gort::run(|| {
    ///     let (ctx, cancel) = context::with_cancel(&context::background());
    ///     cancel.cancel();
    ///     let mut req = gort::http::types::Request::get("http://127.0.0.1:9/")
    ///         .body(gort::http::Body::empty())
    ///         .unwrap();
    ///     req.extensions_mut().insert(ctx);
    ///     let e = gort::http::Client::new().request(req).unwrap_err();
    ///     assert_eq!(e.to_string(), "context canceled");
    /// });
    /// ```
    #[track_caller]
    pub fn request(&self, mut req: Request) -> io::Result<Response> {
        let ctx = req.extensions().get::<crate::context::Context>().cloned();
        if let Some(e) = ctx.as_ref().and_then(|c| c.err()) {
            return Err(crate::context::io_error(e));
        }
        let uri = req.uri().clone();
        let (https, default_port) = match uri.scheme_str() {
            Some("http") => (false, 80),
            #[cfg(feature = "tls")]
            Some("https") => (true, 443),
            #[cfg(not(feature = "tls"))]
            Some("https") => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "gort::http: https needs gort's `tls` feature",
                ))
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("gort::http: not an absolute http(s) URL: {uri}"),
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the URL"))?;
        let port = uri.port_u16().unwrap_or(default_port);
        let addr = format!("{host}:{port}");
        let key = format!("{}://{addr}", if https { "https" } else { "http" });

        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut deadline = self.inner.timeout.map(crate::time::Sleep::new);
        let conn = match self.checkout(&key, https) {
            Some(c) => c,
            None => {
                let stream = match &ctx {
                    Some(c) => crate::net::TcpStream::connect_context(c, &addr)?,
                    None => crate::net::TcpStream::connect(&addr)?,
                };
                let _ = stream.set_nodelay(true);
                // (Without the `tls` feature `https` is refused above.)
                #[cfg(feature = "tls")]
                let (io, h2) = if https {
                    self.tls_handshake(stream, host, &mut deadline, ctx.as_ref())?
                } else {
                    (Io::Plain(stream), false)
                };
                #[cfg(not(feature = "tls"))]
                let (io, h2) = (Io::Plain(stream), false);
                let conn = start_conn(io, h2)?;
                if let Conn::H2(s) = &conn {
                    // Shared from now on (a racing request's connection may be replaced).
                    self.inner.h2.lock().insert(key.clone(), s.clone());
                }
                conn
            }
        };
        if let Conn::H1(_) = conn {
            if !req.headers().contains_key(http::header::HOST) {
                let value = if port == default_port {
                    host.to_string()
                } else {
                    addr.clone()
                };
                let value = http::HeaderValue::from_str(&value)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                req.headers_mut().insert(http::header::HOST, value);
            }
            // Origin form on the wire (HTTP/2 sends the absolute URI's parts as its
            // pseudo-headers instead).
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            *req.uri_mut() = path
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        // The request on its way (hyper's future owns it, not the sender), and for HTTP/1 how
        // the connection goes back to the pool once the response's body is done.
        type Sent = std::pin::Pin<
            Box<dyn Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>> + Send>,
        >;
        let (sent, back): (Sent, Option<Box<dyn FnOnce() + Send>>) = match conn {
            Conn::H1(mut sender) => {
                let sent = Box::pin(sender.send_request(req));
                let pool = self.inner.clone();
                let back: Box<dyn FnOnce() + Send> = Box::new(move || {
                    pool.idle.lock().entry(key).or_default().push(sender);
                });
                (sent, Some(back))
            }
            Conn::H2(mut sender) => (Box::pin(sender.send_request(req)), None),
        };
        let resp = crate::block_on(bounded(sent, deadline, ctx.as_ref()));
        let resp = match resp {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(io::Error::other(e)),
            None => {
                return Err(timed_out(
                    ctx.as_ref(),
                    "gort::http: timeout awaiting response headers",
                ))
            }
        };
        let (parts, incoming) = resp.into_parts();
        Ok(http::Response::from_parts(
            parts,
            Body::incoming_then(incoming, back),
        ))
    }

    /// A connection to `key` that is ready for a request: the host's HTTP/2 connection (only
    /// HTTPS has one), or an idle HTTP/1 one.
    fn checkout(&self, key: &str, https: bool) -> Option<Conn> {
        if https {
            let mut h2 = self.inner.h2.lock();
            if let Some(s) = h2.get(key) {
                if s.is_ready() {
                    return Some(Conn::H2(s.clone()));
                }
                // Closed (the server went away or sent GOAWAY): a new one replaces it.
                h2.remove(key);
            }
        }
        loop {
            let mut s = self.inner.idle.lock().get_mut(key)?.pop()?;
            if s.is_closed() {
                continue;
            }
            // Ready once its connection saw the last response through (a moment after the
            // body's end was read); an error means it closed meanwhile.
            if crate::block_on(s.ready()).is_ok() {
                return Some(Conn::H1(s));
            }
        }
    }
}

impl Client {
    /// The TLS handshake with `host` on `stream`, within the request's timeout and context.
    #[cfg(feature = "tls")]
    fn tls_handshake(
        &self,
        stream: crate::net::TcpStream,
        host: &str,
        deadline: &mut Option<crate::time::Sleep>,
        ctx: Option<&crate::context::Context>,
    ) -> io::Result<(Io, bool)> {
        let cfg = match &self.inner.tls {
            Some(c) => c.clone(),
            None => super::tls::client_config()?,
        };
        let mut tls = super::tls::TlsStream::client(stream, cfg, host)?;
        // The request's timeout covers the handshake and then the wait for the response.
        let mut wait = bounded(super::tls::Handshake(&mut tls), deadline.take(), ctx);
        let done = crate::block_on(&mut wait);
        *deadline = wait.sleep.take();
        drop(wait);
        match done {
            Some(r) => r?,
            None => return Err(timed_out(ctx, "gort::http: timeout in the TLS handshake")),
        }
        let h2 = tls.is_h2();
        Ok((Io::Tls(Box::new(tls)), h2))
    }
}

/// The error of a wait that ended early: the context's, if it is done, else `TimedOut`.
fn timed_out(ctx: Option<&crate::context::Context>, what: &str) -> io::Error {
    match ctx.and_then(|c| c.err()) {
        Some(e) => crate::context::io_error(e),
        None => io::Error::new(io::ErrorKind::TimedOut, what.to_string()),
    }
}

/// hyper's client connection on `io` (HTTP/2 if `h2`), driven by a goroutine of its own.
fn start_conn(io: Io, h2: bool) -> io::Result<Conn> {
    if h2 {
        let mut b = hyper::client::conn::http2::Builder::new(super::io::Exec);
        b.timer(super::io::Timer);
        let (sender, conn) = crate::block_on(b.handshake(io)).map_err(io::Error::other)?;
        crate::go!(move || {
            // Ends when the peer closes or every sender is gone.
            let _ = crate::block_on(conn);
        });
        return Ok(Conn::H2(sender));
    }
    let (sender, conn) =
        crate::block_on(hyper::client::conn::http1::handshake(io)).map_err(io::Error::other)?;
    crate::go!(move || {
        // Ends when the peer closes or every sender is gone.
        let _ = crate::block_on(conn);
    });
    Ok(Conn::H1(sender))
}

/// `fut` within the request's timeout (`sleep`) and context: `None` if one of them ended it.
fn bounded<F: Future + Unpin>(
    fut: F,
    sleep: Option<crate::time::Sleep>,
    ctx: Option<&crate::context::Context>,
) -> Race<F, impl FnMut(&mut Context<'_>) -> bool + Unpin> {
    let mut done = ctx.cloned().map(Done::new);
    Race {
        fut,
        sleep,
        stop: move |cx: &mut Context<'_>| done.as_mut().is_some_and(|d| d.poll_done(cx)),
    }
}

/// A future of a context's end, through a [`watch`](crate::context::watch) started at the
/// first poll and stopped with the future.
struct Done {
    ctx: crate::context::Context,
    state: Arc<Mutex<(bool, Option<std::task::Waker>)>>,
    watch: Option<crate::context::Watch>,
}

impl Done {
    fn new(ctx: crate::context::Context) -> Done {
        Done {
            ctx,
            state: Arc::new(Mutex::new((false, None))),
            watch: None,
        }
    }

    fn poll_done(&mut self, cx: &mut Context<'_>) -> bool {
        if self.ctx.err().is_some() {
            return true;
        }
        {
            let mut s = self.state.lock();
            if s.0 {
                return true;
            }
            s.1 = Some(cx.waker().clone());
        }
        if self.watch.is_none() {
            let state = self.state.clone();
            self.watch = Some(crate::context::watch(&self.ctx, move || {
                let w = {
                    let mut s = state.lock();
                    s.0 = true;
                    s.1.take()
                };
                if let Some(w) = w {
                    w.wake();
                }
            }));
        }
        false
    }
}
