//! HTTP for goroutines (Go's `net/http`), on hyper 1.x and the `http` crate's types (feature
//! `http`): a [`Server`] whose handlers are plain functions from [`Request`] to [`Response`],
//! run on goroutines (the connection's, or one of its own for a request with a body), free to
//! block, park, `defer!` and `recover`; a
//! pooled keep-alive [`Client`] usable from many goroutines at once; [`listen_and_serve`],
//! [`get`] and [`post`] as in Go.
//!
//! hyper runs on gort through [`block_on`](crate::block_on): a goroutine per connection polls
//! hyper's connection future, whose socket is a gort socket's async side (`net/task_io.rs`,
//! the same poller and poll descriptor the blocking calls use), whose timer is gort's
//! ([`time::Sleep`](crate::time::Sleep)). Bodies are [`Body`]: `std::io::Read` for goroutine
//! code, `http_body::Body` for hyper. docs/http.md has the diagrams.
//!
//! A module of gort rather than a crate of the workspace: it needs gort's internals (the raw
//! read into hyper's buffers, the goroutine frames of its handlers), and a feature keeps
//! hyper out of builds that do not ask for it.
//!
//! The server speaks HTTP/1.1 and HTTP/2: over TLS (feature `tls`, rustls) as the client
//! chooses by ALPN, and in clear text (h2c) to clients with prior knowledge. The client speaks
//! HTTP/1.1, and HTTP/2 where a TLS server chooses it. [`ServeMux`] is Go 1.22's router. Not
//! there yet: h2c in the client, the `Upgrade: h2c` dance, a context on the client's body
//! reads, read and write timeouts per HTTP/2 stream (docs/http.md).

mod body;
mod client;
mod io;
mod mux;
mod oneshot;
mod server;
#[cfg(feature = "tls")]
pub mod tls;

pub use body::Body;
pub use client::{get, post, Client, ClientBuilder};
pub use mux::{path_value, PathValues, ServeMux};
#[cfg(feature = "tls")]
pub use server::listen_and_serve_tls;
pub use server::{context, listen_and_serve, Handler, RemoteAddr, Server};

/// The `http` crate, whose types gort's HTTP uses (`Method`, `StatusCode`, `header`, `Uri`,
/// `HeaderMap`, the request and response builders).
pub use ::http as types;
pub use ::http::{header, Method, StatusCode};

/// A request, as a handler receives it and a client sends it.
pub type Request = ::http::Request<Body>;

/// A response, as a handler returns it and a client receives it.
pub type Response = ::http::Response<Body>;
