//! `gort::http` over loopback: keep-alive and pooling, pipelining, bodies both ways (chunked,
//! large, streamed), `Expect: 100-continue`, handlers that park or panic, a header timeout,
//! malformed requests, and graceful shutdown with requests in flight.
#![cfg(feature = "http")]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gort::http::{Body, Client, RemoteAddr, Request, Response, Server, StatusCode};
use gort::net::{TcpListener, TcpStream};
use support::serve as start;

fn text(body: &'static str) -> Response {
    Response::new(Body::from(body))
}

/// The server's view of the client's port, per request: one port means one connection.
#[gort::test(procs = 2)]
fn a_client_keeps_its_connection_alive_and_pools_it() {
    let ports = Arc::new(Mutex::new(Vec::new()));
    let p = ports.clone();
    let addr = start(Server::new(move |req: Request| {
        p.lock()
            .unwrap()
            .push(req.extensions().get::<RemoteAddr>().unwrap().0.port());
        text("ok")
    }));
    let c = Client::new();
    for _ in 0..20 {
        let r = c.get(&format!("http://{addr}/")).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.into_body().text().unwrap(), "ok");
    }
    let seen: HashSet<u16> = ports.lock().unwrap().iter().copied().collect();
    assert_eq!(seen.len(), 1, "20 requests over {} connections", seen.len());

    // Many goroutines at once share the pool: fewer connections than requests.
    ports.lock().unwrap().clear();
    let wg = gort::WaitGroup::new();
    for _ in 0..8 {
        wg.add(1);
        let (w, c) = (wg.clone(), c.clone());
        gort::go!(move || {
            for _ in 0..25 {
                let r = c.get(&format!("http://{addr}/x")).unwrap();
                assert_eq!(r.into_body().text().unwrap(), "ok");
            }
            w.done();
        });
    }
    wg.wait();
    let ports = ports.lock().unwrap();
    assert_eq!(ports.len(), 200);
    let seen: HashSet<u16> = ports.iter().copied().collect();
    assert!(
        seen.len() <= 9,
        "{} connections for 8 goroutines",
        seen.len()
    );
}

/// Two requests written at once on one connection: two responses, in order.
#[gort::test(procs = 1)]
fn pipelined_requests_are_answered_in_order() {
    let addr = start(Server::new(|req: Request| {
        Response::new(Body::from(req.uri().path().to_string()))
    }));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let first = all.find("/first").expect("first answered");
    let second = all.find("/second").expect("second answered");
    assert!(first < second, "{all}");
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
}

/// A 4 MiB upload streamed (chunked) by the client, read by the handler with `Read`, and
/// streamed back from a reader: every byte arrives.
#[gort::test(procs = 2)]
fn large_bodies_stream_both_ways() {
    let addr = start(Server::new(|req: Request| {
        // Echo: the request body becomes the response body, streamed.
        Response::new(Body::from_reader(req.into_body()))
    }));
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 253) as u8).collect();
    let req = gort::http::types::Request::post(format!("http://{addr}/echo"))
        .body(Body::from_reader(std::io::Cursor::new(data.clone())))
        .unwrap();
    let r = Client::new().request(req).unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
    let got = r.into_body().bytes().unwrap();
    assert!(got == data, "{} bytes back of {}", got.len(), data.len());
}

/// `Expect: 100-continue`: the interim response comes when the handler starts reading.
#[gort::test(procs = 1)]
fn expect_continue_gets_its_interim_response() {
    let addr = start(Server::new(|req: Request| {
        let body = req.into_body().text().unwrap();
        Response::new(Body::from(format!("got {body}")))
    }));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("HTTP/1.1 100 Continue"),
        "{:?}",
        std::str::from_utf8(&buf[..n])
    );
    s.write_all(b"hello").unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("200 OK") && rest.ends_with("got hello"),
        "{rest}"
    );
}

/// A handler that panics answers 500, and the server keeps serving; handlers may park on
/// channels and timers.
#[gort::test(procs = 2)]
fn a_panicking_handler_answers_500_and_the_server_stays_up() {
    let ch: gort::Chan<&'static str> = gort::Chan::new(0);
    let tx = ch.clone();
    gort::go!(move || loop {
        tx.send("from a goroutine");
    });
    let addr = start(Server::new(move |req: Request| match req.uri().path() {
        "/panic" => panic!("handler failed"),
        "/park" => {
            gort::time::sleep(Duration::from_millis(5));
            Response::new(Body::from(ch.recv().unwrap()))
        }
        _ => text("fine"),
    }));
    let c = Client::new();
    for _ in 0..3 {
        let r = c.get(&format!("http://{addr}/panic")).unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = c.get(&format!("http://{addr}/park")).unwrap();
        assert_eq!(r.into_body().text().unwrap(), "from a goroutine");
        let r = c.get(&format!("http://{addr}/")).unwrap();
        assert_eq!(r.into_body().text().unwrap(), "fine");
    }
}

/// A client that never finishes its request head is disconnected after the header timeout.
#[gort::test(procs = 1)]
fn a_slow_client_is_cut_off_by_the_header_timeout() {
    let addr = start(
        Server::new(|_req: Request| text("late")).read_header_timeout(Duration::from_millis(100)),
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // no blank line
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest); // EOF (or a reset) when the server gives up
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!String::from_utf8_lossy(&rest).contains("late"));
}

/// Garbage instead of a request: a 400, and the connection closes.
#[gort::test(procs = 1)]
fn a_malformed_request_gets_a_400() {
    let addr = start(Server::new(|_req: Request| text("never")));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    assert!(all.starts_with("HTTP/1.1 400"), "{all:?}");
}

/// Graceful shutdown: a request in flight when the context ends completes, new connections
/// are refused, and `serve_until` returns once the last connection closed.
#[gort::test(procs = 2)]
fn graceful_shutdown_finishes_requests_in_flight() {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
    let started: gort::Chan<()> = gort::Chan::new(1);
    let st = started.clone();
    let server = Server::new(move |_req: Request| {
        let _ = st.try_send(());
        gort::time::sleep(Duration::from_millis(200));
        text("finished")
    });
    let done = gort::spawn(move || server.serve_until(ln, &ctx));
    let inflight = gort::spawn(move || {
        let r = gort::http::get(&format!("http://{addr}/slow")).unwrap();
        (r.status(), r.into_body().text().unwrap())
    });
    started.recv();
    cancel.cancel();
    let (status, body) = inflight.join();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "finished"));
    done.join().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener still accepts after shutdown"
    );
}

/// A request's context (in its extensions, Go's `NewRequestWithContext`) ends the wait for a
/// slow response with the context's error; the pooled client goes on working.
#[gort::test(procs = 2)]
fn a_request_context_cancels_the_wait() {
    let addr = start(Server::new(|req: Request| {
        if req.uri().path() == "/slow" {
            gort::time::sleep(Duration::from_secs(5));
        }
        text("done")
    }));
    let c = Client::new();
    let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
    gort::go!(move || {
        gort::time::sleep(Duration::from_millis(100));
        cancel.cancel();
    });
    let mut req = gort::http::types::Request::get(format!("http://{addr}/slow"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ctx);
    let t = Instant::now();
    let e = c.request(req).unwrap_err();
    assert_eq!(e.to_string(), "context canceled");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "waited for the handler"
    );
    let r = c.get(&format!("http://{addr}/fast")).unwrap();
    assert_eq!(r.into_body().text().unwrap(), "done");
}

/// Sockets open in the process (the runtime's own descriptors, its poller's and a few files
/// it opens once, are not counted).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Thousands of concurrent keep-alive connections, then malformed requests and abandoned
/// connections: after a graceful shutdown the descriptors and goroutines are back to where
/// they were. (In a child process: the descriptor count is the process's. As many
/// connections as the descriptor limit allows, up to 10,000: each costs two descriptors
/// here, client and server.)
#[test]
fn many_connections_and_bad_clients_leave_nothing_behind() {
    if !support::is_child() {
        let out = support::run_child("many_connections_and_bad_clients_leave_nothing_behind", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // SAFETY: getrlimit/setrlimit with a valid struct; raising the soft limit to the hard.
    let hard = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        r.rlim_max as usize
    };
    let conns = (hard.saturating_sub(512) / 2).min(10_000);
    gort::Builder::new().procs(2).run(move || {
        let fds_before = open_fds();
        let gs_before = gort::num_goroutine();
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
        let server = Server::new(|_req: Request| text("ok"));
        let done = gort::spawn(move || server.serve_until(ln, &ctx));

        // Open every connection first (all concurrent), then send one request on each.
        let socks: Vec<TcpStream> = (0..conns)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let wg = gort::WaitGroup::new();
        for s in socks {
            wg.add(1);
            let w = wg.clone();
            gort::go!(move || {
                let mut s = s;
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).unwrap();
                assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
                w.done();
                // Held open (idle keep-alive) until the shutdown closes it.
                let _ = s.read(&mut buf);
            });
        }
        wg.wait();
        // Bad clients: garbage, a half-sent head, a connection closed at once.
        for _ in 0..50 {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(b"\x16\x03\x01 not http\r\n\r\n");
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost");
            drop(s);
            drop(TcpStream::connect(addr).unwrap());
        }
        cancel.cancel();
        done.join().unwrap();
        // The idle clients see their connections closed and end.
        let t = Instant::now();
        while (open_fds() > fds_before || gort::num_goroutine() > gs_before)
            && t.elapsed() < Duration::from_secs(30)
        {
            gort::time::sleep(Duration::from_millis(20));
        }
        assert_eq!(open_fds(), fds_before, "sockets left open");
        assert_eq!(gort::num_goroutine(), gs_before, "goroutines left");
    });
}

/// hyper's I/O traits over a gort socket, for a client written with hyper itself (the h2c
/// test below): reads through a stack buffer, no unsafe.
struct TestIo(TcpStream);

impl hyper::rt::Read for TestIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut tmp = [0u8; 8192];
        let want = buf.remaining().min(tmp.len());
        let n = std::task::ready!(self.0.poll_read(cx, &mut tmp[..want]))?;
        buf.put_slice(&tmp[..n]);
        std::task::Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for TestIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[derive(Clone)]
struct TestExec;

impl<F: std::future::Future + Send + 'static> hyper::rt::Executor<F> for TestExec
where
    F::Output: Send,
{
    fn execute(&self, fut: F) {
        gort::go!(move || {
            gort::block_on(fut);
        });
    }
}

/// HTTP/2 with prior knowledge (h2c): many streams on one connection, each handled in a
/// goroutine of its own and at the same time (the handlers wait for each other), bodies both
/// ways.
#[gort::test(procs = 2)]
fn h2c_serves_many_streams_on_one_connection() {
    const STREAMS: usize = 20;
    let arrived = Arc::new(gort::WaitGroup::new());
    arrived.add(STREAMS as i32);
    let a = arrived.clone();
    let addr = start(Server::new(move |req: Request| {
        assert_eq!(req.version(), gort::http::types::Version::HTTP_2);
        let path = req.uri().path().to_string();
        let body = req.into_body().text().unwrap();
        // Every stream's handler is running before any answers: they run concurrently.
        a.done();
        a.wait();
        Response::new(Body::from(format!("{path} {body}")))
    }));
    let s = TcpStream::connect(addr).unwrap();
    let (sender, conn) =
        gort::block_on(hyper::client::conn::http2::handshake(TestExec, TestIo(s))).unwrap();
    gort::go!(move || {
        let _ = gort::block_on(conn);
    });
    let wg = gort::WaitGroup::new();
    for i in 0..STREAMS {
        wg.add(1);
        let (w, mut sender) = (wg.clone(), sender.clone());
        gort::go!(move || {
            let req = gort::http::types::Request::post(format!("http://{addr}/s{i}"))
                .body(Body::from(format!("body {i}")))
                .unwrap();
            let resp = gort::block_on(sender.send_request(req)).unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let mut body = resp.into_body();
            let mut got = Vec::new();
            while let Some(frame) = gort::block_on(std::future::poll_fn(|cx| {
                http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
            })) {
                if let Ok(data) = frame.unwrap().into_data() {
                    got.extend_from_slice(&data);
                }
            }
            assert_eq!(String::from_utf8(got).unwrap(), format!("/s{i} body {i}"));
            w.done();
        });
    }
    wg.wait();
}

/// Go's `r.Context()`: a handler running on its own goroutine (the request has a body) sees
/// its context cancelled when the client closes the connection, and every handler's context
/// is cancelled once it has returned.
#[gort::test(procs = 2)]
fn a_request_context_ends_when_the_client_goes_away() {
    let seen_tx = gort::Chan::<&'static str>::new(4);
    let kept: Arc<Mutex<Option<gort::context::Context>>> = Arc::new(Mutex::new(None));
    let (tx, keep) = (seen_tx.clone(), kept.clone());
    let addr = start(Server::new(move |req: Request| {
        let ctx = gort::http::context(&req);
        if req.uri().path() == "/quick" {
            *keep.lock().unwrap() = Some(ctx);
            return text("quick");
        }
        let _ = req.into_body().bytes(); // read the body: hyper then watches the socket
        gort::select! {
            recv(ctx.done()) -> _ => tx.send("cancelled"),
            recv(gort::time::after(Duration::from_secs(10))) -> _ => tx.send("timed out"),
        }
        text("late")
    }));
    // A request with a body, then the client hangs up before the answer.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    gort::time::sleep(Duration::from_millis(50));
    let t = Instant::now();
    drop(s);
    assert_eq!(seen_tx.recv(), Some("cancelled"));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // A handler that returned: its context is done.
    let r = Client::new().get(&format!("http://{addr}/quick")).unwrap();
    assert_eq!(r.into_body().text().unwrap(), "quick");
    let ctx = kept.lock().unwrap().take().unwrap();
    assert!(ctx.err().is_some(), "the context outlived its handler");
}

/// Reads from `s` until the peer closes (0, or a reset); what came before, and how long it
/// took. Bounded by a 10 s read timeout (a timeout is a failure).
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
    (got, t.elapsed())
}

/// Go's `IdleTimeout`: a keep-alive connection with no request in flight for the timeout is
/// closed; one whose request takes longer than the timeout is not cut off. (As in Go, the
/// wait for a new connection's first request is the header timeout's, not this one's.)
#[gort::test(procs = 2)]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let addr = start(
        Server::new(|req: Request| {
            if req.uri().path() == "/slow" {
                gort::time::sleep(Duration::from_millis(400));
            }
            text("ok")
        })
        .idle_timeout(Duration::from_millis(150)),
    );
    // A slow request outlives the idle timeout and is answered.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = read_until_closed(&mut s);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("ok"), "{got}");
    // Then idle: closed about 150 ms after the answer (400 ms in).
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Go's `WriteTimeout`: a response not written within the timeout of the request's head
/// (here, a handler slower than it) is never sent; the connection closes. A fast request is
/// answered, on a fresh connection and again on the same one (the deadline is per request).
#[gort::test(procs = 2)]
fn a_response_later_than_the_write_timeout_is_not_sent() {
    let addr = start(
        Server::new(|req: Request| {
            if req.uri().path() == "/slow" {
                gort::time::sleep(Duration::from_millis(300));
            }
            text("ok")
        })
        .write_timeout(Duration::from_millis(100)),
    );
    let c = Client::new();
    for _ in 0..3 {
        let r = c.get(&format!("http://{addr}/fast")).unwrap();
        assert_eq!(r.into_body().text().unwrap(), "ok");
        gort::time::sleep(Duration::from_millis(60)); // 180 ms in all: past one deadline
    }
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, _) = read_until_closed(&mut s);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
}

/// Go's `ReadTimeout` (past the head): a client that sends its body too slowly fails the
/// handler's read and loses the connection; one that sends it in time is answered, also by a
/// handler that then takes longer than the timeout, and the deadline does not outlive its
/// request (the next request on the connection, after a pause longer than the timeout, is
/// served).
#[gort::test(procs = 2)]
fn a_body_slower_than_the_read_timeout_fails_the_handlers_read() {
    let failed: gort::Chan<String> = gort::Chan::new(4);
    let f = failed.clone();
    let addr = start(
        Server::new(move |req: Request| {
            let slow = req.uri().path() == "/slow";
            match req.into_body().bytes() {
                Ok(b) => {
                    if slow {
                        // Longer than the timeout, after the body: the answer still goes out.
                        gort::time::sleep(Duration::from_millis(300));
                    }
                    text(if b.len() == 4 { "got 4" } else { "short" })
                }
                Err(e) => {
                    f.send(e.to_string());
                    text("failed")
                }
            }
        })
        .read_timeout(Duration::from_millis(150)),
    );
    let mut s = TcpStream::connect(addr).unwrap();
    let req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd";
    s.write_all(req).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("got 4"));
    gort::time::sleep(Duration::from_millis(250)); // longer than the timeout, between requests
    s.write_all(req).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("got 4"));
    // A handler slower than the timeout once it has the body: answered.
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd")
        .unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("got 4"));
    // The slow one: half the body, then nothing.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        .unwrap();
    let t = Instant::now();
    let e = failed.recv().unwrap();
    assert!(!e.is_empty());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (_, took) = read_until_closed(&mut slow);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A client that sends part of HTTP/2's preface and stops is bound by the header timeout like
/// a silent one (it was not: its goroutine peeked every millisecond for ever).
#[gort::test(procs = 2)]
fn a_partial_h2c_preface_meets_the_header_timeout() {
    let addr = start(
        Server::new(|_req: Request| text("ok")).read_header_timeout(Duration::from_millis(150)),
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0").unwrap();
    let (got, took) = read_until_closed(&mut s);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(took < Duration::from_secs(5), "{took:?}");
}
