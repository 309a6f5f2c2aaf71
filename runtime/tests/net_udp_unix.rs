//! UDP and Unix-domain sockets through the network poller, and descriptor hygiene: every
//! socket gort opens is closed when its last handle goes. Bounded in time and count.

#[macro_use]
mod support;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

rt_test! {
    fn udp_send_and_receive() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let saddr = server.local_addr().unwrap();
        // The server parks in recv_from before any datagram exists.
        let echo = gort::spawn(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        gort::time::sleep(Duration::from_millis(10));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(saddr).unwrap();
        assert_eq!(client.peer_addr().unwrap(), saddr);
        for i in 0..100u32 {
            let msg = format!("datagram {i}");
            client.send(msg.as_bytes()).unwrap();
            let mut buf = [0u8; 1500];
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], msg.as_bytes());
        }
        echo.join();
    }
}

rt_test! {
    fn udp_peek_and_deadline() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"peek me", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"peek me"[..], a.local_addr().unwrap()));
        let (n, _) = b.recv_from(&mut buf).unwrap(); // still there after the peek
        assert_eq!(&buf[..n], b"peek me");
        b.set_read_deadline(Some(Instant::now() + Duration::from_millis(30))).unwrap();
        assert_eq!(b.recv_from(&mut buf).unwrap_err().kind(), io::ErrorKind::TimedOut);
        b.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        b.set_read_deadline(None).unwrap();
        assert_eq!(b.recv_from(&mut buf).unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}

rt_test! {
    fn udp_close_wakes_a_receiver() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = s.try_clone().unwrap();
        let h = gort::spawn(move || r.recv_from(&mut [0; 8]).map(|_| ()).map_err(|e| e.kind()));
        gort::time::sleep(Duration::from_millis(20));
        s.close();
        assert_eq!(h.join(), Err(io::ErrorKind::NotConnected));
    }
}

fn socket_path(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("gort-test-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

rt_test! {
    fn unix_listener_and_streams() {
        let path = socket_path(if gort::gomaxprocs() == 1 { "ul1" } else { "ul4" });
        let ln = UnixListener::bind(&path).unwrap();
        gort::go!(move || {
            for conn in ln.incoming().take(20) {
                let mut c = conn.unwrap();
                gort::go!(move || {
                    let mut line = Vec::new();
                    c.read_to_end(&mut line).unwrap();
                    line.make_ascii_uppercase();
                    c.write_all(&line).unwrap();
                });
            }
        });
        let wg = gort::WaitGroup::new();
        for i in 0..20 {
            wg.add(1);
            let (wg, path) = (wg.clone(), path.clone());
            gort::go!(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                s.write_all(format!("hello {i}").as_bytes()).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = String::new();
                s.read_to_string(&mut back).unwrap();
                assert_eq!(back, format!("HELLO {i}"));
                wg.done();
            });
        }
        wg.wait();
        std::fs::remove_file(&path).unwrap();
    }
}

rt_test! {
    fn unix_pair_full_duplex_and_deadline() {
        let (a, b) = UnixStream::pair().unwrap();
        const LEN: usize = 4 << 20;
        let a2 = a.try_clone().unwrap();
        let writer = gort::spawn(move || {
            let data: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8).collect();
            (&a2).write_all(&data).unwrap();
        });
        let mut got = vec![0u8; LEN];
        (&b).read_exact(&mut got).unwrap();
        writer.join();
        assert!(got.iter().enumerate().all(|(i, x)| *x == (i % 241) as u8));
        b.set_read_deadline(Some(Instant::now() + Duration::from_millis(20))).unwrap();
        assert_eq!((&b).read(&mut [0; 4]).unwrap_err().kind(), io::ErrorKind::TimedOut);
        drop(a);
    }
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn no_descriptor_leaks() {
    // In a child: other tests of this binary open sockets concurrently.
    if !support::is_child() {
        let out = support::run_child("no_descriptor_leaks", &[]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // The poller's own descriptors (epoll, eventfd) exist once the first socket does.
    drop(UdpSocket::bind("127.0.0.1:0").unwrap());
    // And the runtime's, once per process: the SIGQUIT watcher's pipe, and the pidfd that
    // installs guard pages in batches (opened when the first batch of default-size windows
    // is carved; goroutine 1's larger window is carved alone).
    gort::run(|| gort::spawn(|| ()).join());
    let before = open_fds();
    gort::Builder::new().procs(2).run(|| {
        for _ in 0..3 {
            let ln = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = ln.local_addr().unwrap();
            let server = gort::spawn(move || {
                let mut n = 0;
                for c in ln.incoming().take(50) {
                    let mut c = c.unwrap();
                    let mut b = [0u8; 1];
                    if c.read(&mut b).unwrap() == 1 {
                        c.write_all(&b).unwrap();
                    }
                    n += 1;
                }
                n
            });
            let wg = gort::WaitGroup::new();
            for i in 0..50u8 {
                wg.add(1);
                let wg = wg.clone();
                gort::go!(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    if i % 5 == 0 {
                        // Some close with a deadline armed, some from another handle.
                        s.set_read_deadline(Some(Instant::now() + Duration::from_secs(5)))
                            .unwrap();
                        s.try_clone().unwrap().close();
                    } else {
                        s.write_all(&[i]).unwrap();
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).unwrap();
                    }
                    wg.done();
                });
            }
            wg.wait();
            assert_eq!(server.join(), 50);
            // Refused connects and timed-out reads leave nothing behind either.
            let _ = TcpStream::connect(addr);
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let _ = u.recv_from(&mut [0; 4]);
            let (a, b) = UnixStream::pair().unwrap();
            drop((a, b));
            let conv = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let conv = TcpListener::from(conv).into_std().unwrap();
            drop(conv);
        }
    });
    let after = open_fds();
    if before != after {
        for e in std::fs::read_dir("/proc/self/fd").unwrap() {
            let e = e.unwrap();
            println!("{:?} -> {:?}", e.file_name(), std::fs::read_link(e.path()));
        }
    }
    assert_eq!(before, after, "descriptors open before and after");
    println!("fds: {before} -> {after}");
}

/// A write to a peer that is gone is an error, never a `SIGPIPE`, whatever the signal's
/// disposition: the child sets it to the default (which ends the process), then writes with
/// `write` and `write_vectored` to a TCP connection its peer reset and to a Unix stream whose
/// peer closed. Go never lets a socket write raise `SIGPIPE`.
#[test]
fn writes_to_a_gone_peer_never_raise_sigpipe() {
    let out = support::run_child("child_writes_to_a_gone_peer", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn child_writes_to_a_gone_peer() {
    if !support::is_child() {
        return;
    }
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    gort::Builder::new().procs(2).run(|| {
        /// Writes until the write fails (the first may still be accepted by the kernel).
        fn fails(mut w: impl Write, vectored: bool) -> io::ErrorKind {
            for _ in 0..100 {
                let r = if vectored {
                    w.write_vectored(&[io::IoSlice::new(b"after"), io::IoSlice::new(b" it")])
                } else {
                    w.write(b"after it")
                };
                if let Err(e) = r {
                    return e.kind();
                }
                gort::time::sleep(Duration::from_millis(1));
            }
            panic!("a hundred writes to a gone peer succeeded");
        }
        for vectored in [false, true] {
            let ln = TcpListener::bind("127.0.0.1:0").unwrap();
            let s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
            let (peer, _) = ln.accept().unwrap();
            // SO_LINGER 0: the close sends a reset.
            let l = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and a valid option of the right size.
            let r = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&peer),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &l as *const libc::linger as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0);
            drop(peer);
            let k = fails(&s, vectored);
            assert!(
                matches!(
                    k,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "tcp, vectored {vectored}: {k:?}"
            );
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            assert_eq!(fails(&a, vectored), io::ErrorKind::BrokenPipe, "unix");
        }
    });
}
