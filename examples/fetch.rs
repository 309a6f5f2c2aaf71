//! A concurrent fetcher (Go's errgroup + http.Get pattern): fetch many URLs at once, at most
//! `limit` at a time, stop at the first failure (the group's context cancels the rest), and
//! sum what came back. For the example to run anywhere, it serves the pages itself first.
//!
//! ```text
//! cargo run --example fetch
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gort::errgroup::{Error, Group};
use gort::http::{Body, Client, Request, Response, StatusCode};

/// Fetches every URL with at most `limit` requests in flight; the bytes fetched in all, or
/// the first error (a failed request or a non-200 status), after which requests not yet
/// started are skipped.
pub fn fetch_all(client: &Client, urls: Vec<String>, limit: usize) -> Result<u64, Error> {
    // Go: g, ctx := errgroup.WithContext(ctx); g.SetLimit(limit)
    let (g, ctx) = Group::<Error>::with_context(&gort::context::background());
    g.set_limit(Some(limit));
    let total = Arc::new(AtomicU64::new(0));
    for url in urls {
        let (c, ctx, total) = (client.clone(), ctx.clone(), total.clone());
        g.go(move || {
            if ctx.err().is_some() {
                return Ok(()); // a sibling failed: skip
            }
            let resp = c.get(&url).map_err(Error::from_boxed_io)?;
            if resp.status() != StatusCode::OK {
                return Err(Error::msg(format!("{url}: {}", resp.status())));
            }
            let body = resp.into_body().bytes().map_err(Error::from_boxed_io)?;
            total.fetch_add(body.len() as u64, Ordering::Relaxed);
            Ok(())
        });
    }
    g.wait()?;
    Ok(total.load(Ordering::Relaxed))
}

/// Pages of `n` bytes at `/page/n`; `/missing` is a 404.
pub fn pages(req: Request) -> Response {
    match req
        .uri()
        .path()
        .strip_prefix("/page/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => Response::new(Body::from(vec![b'x'; n])),
        None => {
            let mut r = Response::new(Body::from("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// io::Error into the group's error type.
trait FromIo {
    fn from_boxed_io(e: std::io::Error) -> Error;
}

impl FromIo for Error {
    fn from_boxed_io(e: std::io::Error) -> Error {
        Error::from_boxed(Box::new(e))
    }
}

#[gort::main]
fn main() {
    let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", ln.local_addr().unwrap());
    gort::go!(move || {
        let _ = gort::http::Server::new(pages).serve(ln);
    });
    let client = Client::new();
    let urls: Vec<String> = (1..=50)
        .map(|i| format!("{base}/page/{}", i * 100))
        .collect();
    match fetch_all(&client, urls, 8) {
        Ok(n) => println!("fetched {n} bytes from 50 pages, 8 at a time"),
        Err(e) => println!("failed: {e}"),
    }
    let mut urls: Vec<String> = (1..=10).map(|i| format!("{base}/page/{i}")).collect();
    urls.insert(5, format!("{base}/missing"));
    match fetch_all(&client, urls, 2) {
        Ok(n) => println!("fetched {n} bytes"),
        Err(e) => println!("the first failure stops the rest: {e}"),
    }
}
