//! Many goroutines on one socket direction (issue 22 §2; Go's `TestTCPConcurrentAccept`): any
//! number may accept on one listener, receive on one UDP socket, or read and write one stream
//! at once. Each direction serialises them (Go's `fdMutex`): one waits for readiness, the
//! others wait their turn, nothing is lost, and a close fails every one of them. At P=1 and
//! P=4; bounded by a watchdog (a lost wake-up hangs).

mod support;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream, UdpSocket};

const ACCEPTORS: usize = 4;
const DIALS: usize = 200;

/// Four goroutines accept on one listener while others dial it; then the listener closes and
/// every acceptor ends with the closed-socket error.
fn concurrent_accept(procs: usize) {
    let _w = support::watchdog(Duration::from_secs(30), "concurrent accept");
    gort::Builder::new().procs(procs).run(|| {
        let ln = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = ln.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = gort::WaitGroup::new();
        let errors: gort::Chan<io::ErrorKind> = gort::Chan::new(ACCEPTORS);
        for _ in 0..ACCEPTORS {
            let (ln, accepted, ended, errors) =
                (ln.clone(), accepted.clone(), ended.clone(), errors.clone());
            ended.add(1);
            gort::go!(move || {
                loop {
                    match ln.accept() {
                        Ok((mut c, _)) => {
                            let mut b = [0u8; 1];
                            c.read_exact(&mut b).unwrap();
                            accepted.fetch_add(1, Ordering::SeqCst); // before the dialler hears back
                            c.write_all(&b).unwrap();
                        }
                        Err(e) => {
                            errors.send(e.kind());
                            break;
                        }
                    }
                }
                ended.done();
            });
        }
        let dialled = gort::WaitGroup::new();
        for i in 0..DIALS {
            let dialled = dialled.clone();
            dialled.add(1);
            gort::go!(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(&[i as u8]).unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).unwrap();
                assert_eq!(b[0], i as u8);
                dialled.done();
            });
        }
        dialled.wait();
        assert_eq!(accepted.load(Ordering::SeqCst), DIALS);
        ln.close();
        ended.wait();
        for _ in 0..ACCEPTORS {
            assert_eq!(errors.recv(), Some(io::ErrorKind::NotConnected));
        }
    });
}

#[test]
fn four_goroutines_accept_on_one_listener_p1() {
    concurrent_accept(1);
}

#[test]
fn four_goroutines_accept_on_one_listener_p4() {
    concurrent_accept(4);
}

/// Four goroutines receive on one UDP socket: every datagram reaches exactly one of them.
fn concurrent_recv_from(procs: usize) {
    let _w = support::watchdog(Duration::from_secs(30), "concurrent recv_from");
    gort::Builder::new().procs(procs).run(|| {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        let got = Arc::new(AtomicUsize::new(0));
        let ended = gort::WaitGroup::new();
        for _ in 0..4 {
            let (sock, got, ended) = (sock.clone(), got.clone(), ended.clone());
            ended.add(1);
            gort::go!(move || {
                let mut buf = [0u8; 16];
                loop {
                    let (n, _) = sock.recv_from(&mut buf).unwrap();
                    if &buf[..n] == b"stop" {
                        break;
                    }
                    got.fetch_add(1, Ordering::SeqCst);
                }
                ended.done();
            });
        }
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..400usize {
            tx.send_to(&(i as u32).to_le_bytes(), addr).unwrap();
            // At most 32 in flight: loopback drops datagrams past the socket's buffer.
            while i >= 32 && got.load(Ordering::SeqCst) < i - 32 {
                gort::time::sleep(Duration::from_micros(100));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.load(Ordering::SeqCst) < 400 && Instant::now() < deadline {
            gort::time::sleep(Duration::from_millis(1));
        }
        assert_eq!(got.load(Ordering::SeqCst), 400);
        for _ in 0..4 {
            tx.send_to(b"stop", addr).unwrap();
        }
        ended.wait();
    });
}

#[test]
fn four_goroutines_recv_from_one_udp_socket_p1() {
    concurrent_recv_from(1);
}

#[test]
fn four_goroutines_recv_from_one_udp_socket_p4() {
    concurrent_recv_from(4);
}

/// Two goroutines write one stream and two read its other end: every byte arrives once.
fn two_readers_two_writers(procs: usize) {
    let _w = support::watchdog(Duration::from_secs(30), "two readers and two writers");
    const PER_WRITER: usize = 4 << 20;
    gort::Builder::new().procs(procs).run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (b, _) = ln.accept().unwrap();
        let wg = gort::WaitGroup::new();
        for _ in 0..2 {
            let (mut w, wg) = (a.try_clone().unwrap(), wg.clone());
            wg.add(1);
            gort::go!(move || {
                let chunk = vec![7u8; 64 << 10];
                for _ in 0..PER_WRITER / chunk.len() {
                    w.write_all(&chunk).unwrap();
                }
                wg.done();
            });
        }
        let read = Arc::new(AtomicUsize::new(0));
        let readers = gort::WaitGroup::new();
        for _ in 0..2 {
            let (mut r, read, readers) = (b.try_clone().unwrap(), read.clone(), readers.clone());
            readers.add(1);
            gort::go!(move || {
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            assert!(buf[..n].iter().all(|&x| x == 7));
                            read.fetch_add(n, Ordering::SeqCst);
                        }
                        Err(e) => panic!("read: {e}"),
                    }
                }
                readers.done();
            });
        }
        wg.wait();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        readers.wait();
        assert_eq!(read.load(Ordering::SeqCst), 2 * PER_WRITER);
    });
}

#[test]
fn two_readers_and_two_writers_on_one_stream_p1() {
    two_readers_two_writers(1);
}

#[test]
fn two_readers_and_two_writers_on_one_stream_p4() {
    two_readers_two_writers(4);
}

/// Goroutines queued behind the one waiting in `accept` all fail when the listener closes, and
/// so do goroutines waiting in `read` with a deadline that passes.
#[gort::test(procs = 2)]
fn a_close_and_a_deadline_reach_every_queued_waiter() {
    let _w = support::watchdog(Duration::from_secs(30), "queued waiters");
    let ln = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let errs: gort::Chan<io::ErrorKind> = gort::Chan::new(8);
    for _ in 0..8 {
        let (ln, errs) = (ln.clone(), errs.clone());
        gort::go!(move || errs.send(ln.accept().map(|_| ()).unwrap_err().kind()));
    }
    gort::time::sleep(Duration::from_millis(20));
    ln.close();
    for _ in 0..8 {
        assert_eq!(errs.recv(), Some(io::ErrorKind::NotConnected));
    }

    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    let _b = ln.accept().unwrap();
    a.set_read_deadline(Some(Instant::now() + Duration::from_millis(50)))
        .unwrap();
    for _ in 0..8 {
        let (mut a, errs) = (a.try_clone().unwrap(), errs.clone());
        gort::go!(move || errs.send(a.read(&mut [0u8; 8]).unwrap_err().kind()));
    }
    for _ in 0..8 {
        assert_eq!(errs.recv(), Some(io::ErrorKind::TimedOut));
    }
}

/// In non-blocking mode an operation does not queue behind a goroutine waiting in the same
/// direction: it fails with `WouldBlock` at once.
#[gort::test(procs = 2)]
fn a_nonblocking_read_does_not_queue_behind_a_blocked_one() {
    let _w = support::watchdog(Duration::from_secs(30), "non-blocking read");
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    let (mut b, _) = ln.accept().unwrap();
    let mut blocked = a.try_clone().unwrap();
    let h = gort::spawn(move || blocked.read(&mut [0u8; 4]));
    gort::time::sleep(Duration::from_millis(20)); // in its read, holding the turnstile
    a.set_nonblocking(true).unwrap();
    let t = Instant::now();
    let e = (&a).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    b.write_all(b"x").unwrap();
    assert_eq!(h.join().unwrap(), 1);
}
