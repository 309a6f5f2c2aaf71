//! gort::http for the HTTP comparison (`benches/scripts/http.py`): `http_server_gort <addr>`.
//! `/json` answers the 1 KiB JSON response (`benches/src/http_json.rs`), anything else
//! "Hello, World!" as `examples/http_hello.rs` does; the same headers as the other servers
//! (Date, Content-Length, Content-Type). GOMAXPROCS comes from the environment.

#[path = "../http_json.rs"]
mod http_json;

use gort::http::{header, Body, Request, Response};

fn serve(req: Request) -> Response {
    let (body, ct) = if req.uri().path() == "/json" {
        (Body::from(http_json::body()), "application/json")
    } else {
        (Body::from("Hello, World!"), "text/plain; charset=utf-8")
    };
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    r
}

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let ln = gort::net::TcpListener::bind(&addr).expect("listens");
    gort::http::Server::new(serve).serve(ln).expect("serves");
}
