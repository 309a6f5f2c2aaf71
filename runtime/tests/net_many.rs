//! 10,000 concurrent TCP connections at GOMAXPROCS 2, every byte checked: the server runs in
//! this process, the clients in a child process (each side needs 10,000 descriptors). Its own
//! test binary, so that no other test's sockets share the descriptor limit.

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gort::net::{TcpListener, TcpStream};
use gort::Chan;

const CONNS: usize = 10_000;
const ROUNDS: usize = 3;
const MSG: usize = 64;

/// The message client `i` sends in `round`: 64 bytes no other client or round sends.
fn message(i: usize, round: usize) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    let mut x = (i as u64) << 8 | round as u64;
    for b in m.iter_mut() {
        // xorshift: every byte depends on the client and the round.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    m
}

#[test]
fn ten_thousand_connections_echo_at_p2() {
    if support::is_child() {
        return clients();
    }
    let (peak, echoed, out) = gort::Builder::new().procs(2).run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let echoed = Arc::new(AtomicUsize::new(0));
        let (o, p, e) = (open.clone(), peak.clone(), echoed.clone());
        gort::go!(move || {
            for conn in ln.incoming() {
                let mut c = conn.expect("accept");
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let (o, e) = (o.clone(), e.clone());
                gort::go!(move || {
                    let mut buf = [0u8; 512];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                c.write_all(&buf[..n]).unwrap();
                                e.fetch_add(n, Ordering::Relaxed);
                            }
                        }
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        // The clients, in a child process; the blocking hand-off keeps this P serving.
        let out = gort::blocking(move || {
            support::run_child(
                "ten_thousand_connections_echo_at_p2",
                &[("GORT_ECHO_ADDR", &addr)],
            )
        });
        (
            peak.load(Ordering::SeqCst),
            echoed.load(Ordering::SeqCst),
            out,
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "clients failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("clients ok: {CONNS}")),
        "{stdout}\n{stderr}"
    );
    assert_eq!(peak, CONNS, "every connection was open at once");
    assert_eq!(echoed, CONNS * ROUNDS * MSG);
}

/// The child: 10,000 goroutines connect, wait until all have, echo three messages each and
/// check every byte, wait until all have, then hang up.
fn clients() {
    let addr: std::net::SocketAddr = std::env::var("GORT_ECHO_ADDR").unwrap().parse().unwrap();
    let ok = gort::Builder::new().procs(2).run(move || {
        let connected = gort::WaitGroup::new();
        let echoed = gort::WaitGroup::new();
        let (go_echo, hang_up): (Chan<()>, Chan<()>) = (Chan::new(0), Chan::new(0));
        let ok = Arc::new(AtomicUsize::new(0));
        let done = gort::WaitGroup::new();
        for i in 0..CONNS {
            connected.add(1);
            echoed.add(1);
            done.add(1);
            let (connected, echoed, done) = (connected.clone(), echoed.clone(), done.clone());
            let (go_echo, hang_up, ok) = (go_echo.clone(), hang_up.clone(), ok.clone());
            gort::go!(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                connected.done();
                assert_eq!(go_echo.recv(), None);
                for round in 0..ROUNDS {
                    let m = message(i, round);
                    s.write_all(&m).unwrap();
                    let mut back = [0u8; MSG];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, m, "client {i} round {round}");
                }
                ok.fetch_add(1, Ordering::Relaxed);
                echoed.done();
                assert_eq!(hang_up.recv(), None);
                drop(s);
                done.done();
            });
        }
        connected.wait();
        go_echo.close();
        echoed.wait();
        hang_up.close();
        done.wait();
        ok.load(Ordering::Relaxed)
    });
    println!("clients ok: {ok}");
}
