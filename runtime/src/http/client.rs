//! The client: hyper's HTTP/1 client connections, each driven by a goroutine of its own,
//! pooled per host and port, usable from many goroutines at once (Go's `http.Client`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

use super::body::Body;
use super::io::Io;
use super::{Request, Response};

type Sender = hyper::client::conn::http1::SendRequest<Body>;

/// An HTTP/1.1 client with a pool of keep-alive connections (Go's `http.Client` with its
/// default transport); clones share the pool. `http://` only for now (TLS is not there yet).
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
    /// Idle connections per `host:port`.
    idle: Mutex<HashMap<String, Vec<Sender>>>,
    timeout: Option<Duration>,
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
        Client {
            inner: Arc::new(Inner {
                idle: Mutex::new(HashMap::new()),
                timeout: Some(d),
            }),
        }
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
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "gort::http: https is not supported yet",
                ))
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("gort::http: not an absolute http URL: {uri}"),
                ))
            }
        }
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in the URL"))?;
        let port = uri.port_u16().unwrap_or(80);
        let key = format!("{host}:{port}");
        if !req.headers().contains_key(http::header::HOST) {
            let value = if port == 80 {
                host.to_string()
            } else {
                key.clone()
            };
            let value = http::HeaderValue::from_str(&value)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            req.headers_mut().insert(http::header::HOST, value);
        }
        // Origin form on the wire.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = path
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

        let deadline = self.inner.timeout.map(crate::time::Sleep::new);
        let mut sender = match self.checkout(&key) {
            Some(s) => s,
            None => connect(&key, ctx.as_ref())?,
        };
        let resp = crate::block_on(Timeout {
            fut: Box::pin(sender.send_request(req)),
            sleep: deadline,
            done: ctx.clone().map(Done::new),
        });
        let resp = match resp {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(io::Error::other(e)),
            None => {
                if let Some(e) = ctx.as_ref().and_then(|c| c.err()) {
                    return Err(crate::context::io_error(e));
                }
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "gort::http: timeout awaiting response headers",
                ));
            }
        };
        let (parts, incoming) = resp.into_parts();
        let pool = self.inner.clone();
        let back: Box<dyn FnOnce() + Send> = Box::new(move || {
            pool.idle.lock().entry(key).or_default().push(sender);
        });
        Ok(http::Response::from_parts(
            parts,
            Body::incoming_then(incoming, Some(back)),
        ))
    }

    /// An idle connection to `key` that is ready for a request.
    fn checkout(&self, key: &str) -> Option<Sender> {
        loop {
            let mut s = self.inner.idle.lock().get_mut(key)?.pop()?;
            if s.is_closed() {
                continue;
            }
            // Ready once its connection saw the last response through (a moment after the
            // body's end was read); an error means it closed meanwhile.
            if crate::block_on(s.ready()).is_ok() {
                return Some(s);
            }
        }
    }
}

/// A new connection to `key` (within `ctx`, if any), its hyper connection driven by a
/// goroutine of its own.
fn connect(key: &str, ctx: Option<&crate::context::Context>) -> io::Result<Sender> {
    let stream = match ctx {
        Some(c) => crate::net::TcpStream::connect_context(c, key)?,
        None => crate::net::TcpStream::connect(key)?,
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = crate::block_on(hyper::client::conn::http1::handshake(Io(stream)))
        .map_err(io::Error::other)?;
    crate::go!(move || {
        // Ends when the peer closes or every sender is gone.
        let _ = crate::block_on(conn);
    });
    Ok(sender)
}

/// `fut`, or `None` once `sleep` completes or the context is done first.
struct Timeout<F> {
    fut: Pin<Box<F>>,
    sleep: Option<crate::time::Sleep>,
    done: Option<Done>,
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

impl<F: Future> Future for Timeout<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if let Poll::Ready(v) = self.fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if let Some(s) = &mut self.sleep {
            if Pin::new(s).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        if let Some(d) = &mut self.done {
            if d.poll_done(cx) {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    }
}
