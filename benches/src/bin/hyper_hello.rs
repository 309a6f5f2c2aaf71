//! tokio + hyper serving "Hello, World!" for the HTTP comparison (`benches/scripts/http.py`):
//! `hyper_hello <addr> <threads>`. HTTP/1.1 with keep-alive, one task per connection, the
//! same headers as gort's `http_hello` and `http_raw` examples and Go's net/http (Date, Content-Length,
//! Content-Type).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[path = "../http_json.rs"]
mod http_json;

/// `/json`: the 1 KiB JSON response (`benches/src/http_json.rs`); anything else: "Hello,
/// World!".
async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (body, ct) = if req.uri().path() == "/json" {
        (Bytes::from(http_json::body()), "application/json")
    } else {
        (
            Bytes::from_static(b"Hello, World!"),
            "text/plain; charset=utf-8",
        )
    };
    let mut r = Response::new(Full::new(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ct),
    );
    Ok(r)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("threads"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let ln = TcpListener::bind(&addr).await.unwrap();
        loop {
            let (conn, _) = match ln.accept().await {
                Ok(c) => c,
                Err(_) => continue,
            };
            let _ = conn.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), service_fn(hello))
                    .await;
            });
        }
    });
}
