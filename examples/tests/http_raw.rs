//! The HTTP example answers requests as curl sends them: keep-alive, pipelined, `Connection:
//! close`, HTTP/1.0, bodies, and bad requests. The example's own source is compiled in here.

#[path = "../http_raw.rs"]
#[allow(dead_code)]
mod http_raw;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A curl-style GET.
fn get(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n{extra}\r\n"
    )
}

/// Reads one response (head and `Content-Length` body) from `s`.
fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "response head: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(b[0]);
    }
    let head = String::from_utf8(got).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head + std::str::from_utf8(&body).unwrap()
}

/// Runs the server on a runtime in the background; its address.
fn start() -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        gort::Builder::new().procs(2).run(move || {
            let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(ln.local_addr().unwrap()).unwrap();
            http_raw::serve(ln);
        })
    });
    rx.recv().unwrap()
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn keep_alive_and_pipelining() {
    let addr = start();
    let mut s = connect(addr);
    for _ in 0..3 {
        s.write_all(get("/", "").as_bytes()).unwrap();
        let r = read_response(&mut s);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\r\nDate: "), "{r}");
        assert!(r.ends_with("\r\n\r\nHello, World!"), "{r}");
        assert!(!r.contains("Connection: close"), "{r}");
    }
    // Pipelined: three requests in one write, three responses in order.
    let three = get("/a", "").repeat(3);
    s.write_all(three.as_bytes()).unwrap();
    for _ in 0..3 {
        assert!(read_response(&mut s).ends_with("Hello, World!"));
    }
    // A request split across writes.
    let req = get("/split", "");
    s.write_all(&req.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(&req.as_bytes()[10..]).unwrap();
    assert!(read_response(&mut s).ends_with("Hello, World!"));
}

#[test]
fn connection_close_and_http_1_0() {
    let addr = start();
    let mut s = connect(addr);
    s.write_all(get("/", "Connection: close\r\n").as_bytes())
        .unwrap();
    let r = read_response(&mut s);
    assert!(r.contains("Connection: close\r\n"), "{r}");
    assert_eq!(s.read(&mut [0; 16]).unwrap(), 0, "the server closed");

    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap(); // 1.0 without keep-alive: closed after
    assert!(
        all.starts_with("HTTP/1.1 200 OK") && all.ends_with("Hello, World!"),
        "{all}"
    );
}

#[test]
fn bodies_and_bad_requests() {
    let addr = start();
    let mut s = connect(addr);
    s.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    assert!(read_response(&mut s).ends_with("Hello, World!"));
    s.write_all(get("/", "").as_bytes()).unwrap(); // the body was skipped, not parsed
    assert!(read_response(&mut s).ends_with("Hello, World!"));

    let mut s = connect(addr);
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 400 Bad Request"), "{all}");
}

#[test]
fn many_clients_at_once() {
    let addr = start();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                for _ in 0..50 {
                    s.write_all(get("/", "").as_bytes()).unwrap();
                    assert!(read_response(&mut s).ends_with("Hello, World!"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
