//! Hello, World! over HTTP with `gort::http` (Go's `http.ListenAndServe` with a `HandleFunc`):
//! hyper's HTTP/1.1 (keep-alive, pipelining) on goroutines, a goroutine per connection and
//! one per request, handlers written as plain blocking functions.
//!
//! ```text
//! cargo run --release --example http_hello -- 127.0.0.1:8080
//! curl -v http://127.0.0.1:8080/
//! ```
//!
//! GOMAXPROCS in the environment sets the number of Ps, as in Go.

use gort::http::{header, Body, Request, Response};

/// The handler: every path gets the greeting (Go: `func(w http.ResponseWriter, r *http.Request)`).
pub fn hello(_req: Request) -> Response {
    let mut r = Response::new(Body::from("Hello, World!"));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let ln = gort::net::TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("http_hello: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    eprintln!(
        "http_hello: listening on http://{}/",
        ln.local_addr().unwrap()
    );
    if let Err(e) = gort::http::Server::new(hello).serve(ln) {
        eprintln!("http_hello: {e}");
        std::process::exit(1);
    }
}
