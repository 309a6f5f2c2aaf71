//! `gort::http` over TLS (feature `tls`), on loopback with the test CA in `tests/data/tls`
//! (a CA and a `localhost` / `127.0.0.1` certificate it signed, valid to 2126): HTTPS round
//! trips on HTTP/1.1 and HTTP/2 (chosen by ALPN), keep-alive and multiplexing, large bodies
//! both ways, a client that does not trust the server, a plain-HTTP client on the TLS port, a
//! client that never handshakes against the header timeout and against a graceful shutdown.
#![cfg(feature = "tls")]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::http::{tls, Body, Client, RemoteAddr, Request, Response, Server};
use gort::net::{TcpListener, TcpStream};
use support::serve as start;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

fn server_config() -> Arc<tls::rustls::ServerConfig> {
    tls::server_config(data("localhost.pem"), data("localhost.key")).unwrap()
}

/// A client that trusts the test CA, offering `alpn` (`None`: gort's default, h2 then 1.1).
fn client(alpn: Option<&[&[u8]]>) -> Client {
    let mut cfg = tls::client_config_with_roots(data("ca.pem")).unwrap();
    if let Some(protos) = alpn {
        Arc::make_mut(&mut cfg).alpn_protocols = protos.iter().map(|p| p.to_vec()).collect();
    }
    Client::builder().tls(cfg).build()
}

/// Echoes the method, the version, the client's port and the body's length.
fn echo(req: Request) -> Response {
    let port = req.extensions().get::<RemoteAddr>().unwrap().0.port();
    let line = format!("{} {:?} {port}", req.method(), req.version());
    let n = req.into_body().bytes().unwrap().len();
    Response::new(Body::from(format!("{line} {n}")))
}

#[gort::test]
fn https_round_trips_keep_their_connection_on_http1() {
    let addr = start(Server::new(echo).tls(server_config()));
    let c = client(Some(&[b"http/1.1"]));
    let mut ports = HashSet::new();
    for i in 0..5 {
        let r = c
            .post(
                &format!("https://localhost:{}/", addr.port()),
                "text/plain",
                "x".repeat(i),
            )
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), gort::http::types::Version::HTTP_11);
        let text = r.into_body().text().unwrap();
        let f: Vec<&str> = text.split(' ').collect();
        assert_eq!((f[0], f[1], f[3]), ("POST", "HTTP/1.1", &*i.to_string()));
        ports.insert(f[2].to_string());
    }
    assert_eq!(
        ports.len(),
        1,
        "keep-alive: one connection for every request"
    );
}

#[gort::test]
fn https_speaks_http2_when_both_offer_it_and_multiplexes_one_connection() {
    let addr = start(
        Server::new(|req: Request| {
            // Each request waits a little: concurrent ones overlap on the connection.
            gort::time::sleep(Duration::from_millis(20));
            echo(req)
        })
        .tls(server_config()),
    );
    let c = client(None);
    // The first request opens the connection (so that the others share it).
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let first = c.get(&url).unwrap();
    assert_eq!(first.version(), gort::http::types::Version::HTTP_2);
    let first = first.into_body().text().unwrap();
    let wg = gort::WaitGroup::new();
    let seen = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    let t = Instant::now();
    for _ in 0..50 {
        let (c, url, wg, seen) = (c.clone(), url.clone(), wg.clone(), seen.clone());
        wg.add(1);
        gort::go!(move || {
            gort::defer!(wg.done());
            let text = c.get(&url).unwrap().into_body().text().unwrap();
            assert!(text.starts_with("GET HTTP/2.0 "), "{text}");
            seen.lock()
                .insert(text.split(' ').nth(2).unwrap().to_string());
        });
    }
    wg.wait();
    let seen = seen.lock();
    assert_eq!(seen.len(), 1, "one HTTP/2 connection for every request");
    assert!(seen.contains(first.split(' ').nth(2).unwrap()));
    // 50 requests of 20 ms each, multiplexed: far less than their sum (1 s).
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[gort::test]
fn large_bodies_cross_tls_both_ways() {
    let addr = start(
        Server::new(|req: Request| {
            // Streams the request body back (read while the response is sent).
            Response::new(Body::from_reader(req.into_body()))
        })
        .tls(server_config()),
    );
    for alpn in [&[&b"http/1.1"[..]][..], &[&b"h2"[..]][..]] {
        let c = client(Some(alpn));
        let body: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
        let r = c
            .post(
                &format!("https://localhost:{}/", addr.port()),
                "application/octet-stream",
                body.clone(),
            )
            .unwrap();
        let mut got = Vec::new();
        r.into_body().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), body.len());
        assert!(got == body, "the echoed body differs");
    }
}

#[gort::test]
fn a_client_that_does_not_trust_the_server_fails_and_the_server_stays_up() {
    let addr = start(Server::new(echo).tls(server_config()));
    let url = format!("https://localhost:{}/", addr.port());
    // The system's roots do not include the test CA (or there are none: an error too).
    let e = Client::new().get(&url).unwrap_err();
    let msg = e.to_string().to_lowercase();
    assert!(
        msg.contains("certificate") || msg.contains("issuer") || msg.contains("root"),
        "{e}"
    );
    // A certificate for another name: the server on 127.0.0.2 (loopback too, on Linux),
    // whose certificate names only localhost and 127.0.0.1.
    let ln = TcpListener::bind("127.0.0.2:0").unwrap();
    let other = ln.local_addr().unwrap();
    let server = Server::new(echo).tls(server_config());
    gort::go!(move || {
        let _ = server.serve(ln);
    });
    let e = client(None)
        .get(&format!("https://{other}/"))
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // Plain HTTP on the TLS port: the handshake fails, the connection closes.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
    // The server still serves.
    let r = client(None).get(&url).unwrap();
    assert_eq!(r.status(), 200);
}

#[gort::test]
fn a_client_that_never_handshakes_meets_the_header_timeout() {
    let addr = start(
        Server::new(echo)
            .tls(server_config())
            .read_header_timeout(Duration::from_millis(200)),
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    // Closed by the server (end of stream, or a reset), not by our own timeout.
    match s.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[gort::test]
fn graceful_shutdown_does_not_wait_for_a_handshake_that_never_comes() {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
    let server = Server::new(echo).tls(server_config());
    let done = gort::spawn(move || server.serve_until(ln, &ctx));
    // One connection mid-handshake: a ClientHello's first bytes, then nothing.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(&[0x16, 0x03, 0x01]).unwrap();
    // One completed request first, so the server is surely serving.
    let r = client(None)
        .get(&format!("https://localhost:{}/", addr.port()))
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(r);
    gort::time::sleep(Duration::from_millis(50));
    let t = Instant::now();
    cancel.cancel();
    done.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[gort::test]
fn listen_and_serve_tls_reads_its_pem_files_and_reports_bad_ones() {
    let e = tls::server_config(data("ca.pem"), data("missing.key")).unwrap_err();
    assert!(e.to_string().contains("missing.key"), "{e}");
    let e = tls::server_config(data("localhost.key"), data("localhost.key")).unwrap_err();
    assert!(e.to_string().contains("no certificate"), "{e}");
    let e = gort::http::listen_and_serve_tls(
        "127.0.0.1:0",
        data("localhost.pem"),
        data("nothing-here.key"),
        echo,
    )
    .unwrap_err();
    assert!(e.to_string().contains("nothing-here.key"), "{e}");
}

#[gort::test]
fn many_goroutines_share_a_tls_client_on_both_protocols() {
    let addr = start(Server::new(echo).tls(server_config()));
    for alpn in [None, Some(&[&b"http/1.1"[..]][..])] {
        let c = client(alpn);
        let wg = gort::WaitGroup::new();
        for g in 0..support::stress(20) {
            let (c, wg) = (c.clone(), wg.clone());
            wg.add(1);
            gort::go!(move || {
                gort::defer!(wg.done());
                for i in 0..10 {
                    let body = format!("{g}-{i}");
                    let r = c
                        .post(
                            &format!("https://localhost:{}/", addr.port()),
                            "text/plain",
                            body.clone(),
                        )
                        .unwrap();
                    let text = r.into_body().text().unwrap();
                    assert!(text.ends_with(&format!(" {}", body.len())), "{text}");
                }
            });
        }
        wg.wait();
    }
}

/// An HTTP/2 request whose client gives up (its context's deadline) resets its stream: the
/// handler's context (Go's `r.Context()`) is cancelled while it waits, and the connection
/// serves the next request.
#[gort::test]
fn a_reset_http2_stream_cancels_the_handlers_context() {
    let seen: gort::Chan<&'static str> = gort::Chan::new(4);
    let tx = seen.clone();
    let addr = start(
        Server::new(move |req: Request| {
            if req.uri().path() == "/slow" {
                let ctx = gort::http::context(&req);
                gort::select! {
                    recv(ctx.done()) -> _ => tx.send("cancelled"),
                    recv(gort::time::after(Duration::from_secs(10))) -> _ => tx.send("timed out"),
                }
            }
            echo(req)
        })
        .tls(server_config()),
    );
    let c = client(None);
    let url = format!("https://localhost:{}/", addr.port());
    assert_eq!(
        c.get(&url).unwrap().version(),
        gort::http::types::Version::HTTP_2
    );
    let (ctx, _cancel) =
        gort::context::with_timeout(&gort::context::background(), Duration::from_millis(100));
    let mut req = gort::http::types::Request::get(format!("{url}slow"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ctx);
    let e = c.request(req).unwrap_err();
    assert_eq!(e.to_string(), "context deadline exceeded");
    assert_eq!(seen.recv(), Some("cancelled"));
    let r = c.get(&url).unwrap();
    assert_eq!(r.status(), 200);
}

/// Trailers both ways over HTTP/2 (Go's `r.Trailer` / `resp.Trailer` after the body): the
/// client's request trailers reach the handler once it read the body to its end, and the
/// handler's response trailers reach the client the same way.
#[gort::test]
fn trailers_cross_http2_both_ways() {
    let addr = start(
        Server::new(|req: Request| {
            let mut body = req.into_body();
            let mut data = String::new();
            assert!(body.trailers().is_none(), "trailers before the body's end");
            body.read_to_string(&mut data).unwrap();
            let sum = body
                .trailers()
                .and_then(|t| t.get("x-sum"))
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let mut t = gort::http::types::HeaderMap::new();
            t.insert("x-echo-sum", sum.parse().unwrap());
            Response::new(Body::from(data).with_trailers(t))
        })
        .tls(server_config()),
    );
    let mut t = gort::http::types::HeaderMap::new();
    t.insert("x-sum", "42".parse().unwrap());
    let req = gort::http::types::Request::post(format!("https://localhost:{}/", addr.port()))
        .body(Body::from("payload").with_trailers(t))
        .unwrap();
    let resp = client(None).request(req).unwrap();
    assert_eq!(resp.version(), gort::http::types::Version::HTTP_2);
    let mut body = resp.into_body();
    let mut got = String::new();
    body.read_to_string(&mut got).unwrap();
    assert_eq!(got, "payload");
    assert_eq!(body.trailers().unwrap()["x-echo-sum"], "42");
}
