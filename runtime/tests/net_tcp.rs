//! TCP through the network poller, over loopback: accept, connect, echo, deadlines, close,
//! resets, half-close, large writes, plain threads, and deadlock detection's view of
//! goroutines waiting on sockets. Bounded in time and count.

#[macro_use]
mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream};
use gort::Chan;

/// A server that echoes every connection until end of stream, one goroutine each.
fn echo_server() -> SocketAddr {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    gort::go!(move || {
        for conn in ln.incoming() {
            let mut c = match conn {
                Ok(c) => c,
                Err(_) => return,
            };
            gort::go!(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

rt_test! {
    fn echo_many_clients() {
        let addr = echo_server();
        let wg = gort::WaitGroup::new();
        let ok = Arc::new(AtomicUsize::new(0));
        for i in 0..200u32 {
            wg.add(1);
            let (wg, ok) = (wg.clone(), ok.clone());
            gort::go!(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                for round in 0..5u32 {
                    let msg = format!("client {i} round {round}");
                    s.write_all(msg.as_bytes()).unwrap();
                    let mut back = vec![0; msg.len()];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg.as_bytes());
                }
                ok.fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(ok.load(Ordering::Relaxed), 200);
    }
}

rt_test! {
    fn accept_storm() {
        // Many clients connect at once; every one is accepted, answered and counted.
        const N: usize = 2000;
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        gort::go!(move || {
            for _ in 0..N {
                let (mut c, _) = ln.accept().unwrap();
                acc.fetch_add(1, Ordering::Relaxed);
                gort::go!(move || {
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).unwrap();
                    c.write_all(&[b[0] ^ 0xff]).unwrap();
                });
            }
        });
        let wg = gort::WaitGroup::new();
        for i in 0..N {
            wg.add(1);
            let wg = wg.clone();
            gort::go!(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&[i as u8]).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                assert_eq!(b[0], (i as u8) ^ 0xff);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(accepted.load(Ordering::Relaxed), N);
    }
}

rt_test! {
    fn read_deadline_expires() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (_peer, _) = ln.accept().unwrap(); // open, silent
        let t = Instant::now();
        s.set_read_deadline(Some(Instant::now() + Duration::from_millis(50))).unwrap();
        let err = s.read(&mut [0; 16]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "i/o timeout");
        assert!(t.elapsed() >= Duration::from_millis(50), "{:?}", t.elapsed());
        // The deadline stays past: the next read fails at once, as in Go.
        assert_eq!(s.read(&mut [0; 16]).unwrap_err().kind(), io::ErrorKind::TimedOut);
        // Cleared, reads work again.
        s.set_read_deadline(None).unwrap();
        (&_peer).write_all(b"x").unwrap();
        assert_eq!(s.read(&mut [0; 16]).unwrap(), 1);
    }
}

rt_test! {
    fn write_deadline_expires_with_a_full_buffer() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (_peer, _) = ln.accept().unwrap(); // never reads
        s.set_write_deadline(Some(Instant::now() + Duration::from_millis(100))).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        let err = loop {
            match s.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(written > 0, "the buffers took something before they filled");
    }
}

rt_test! {
    fn moving_a_deadline_wakes_the_waiter() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (_peer, _) = ln.accept().unwrap();
        let reader = s.try_clone().unwrap();
        let t = Instant::now();
        let h = gort::spawn(move || (&reader).read(&mut [0; 8]).map_err(|e| e.kind()));
        gort::time::sleep(Duration::from_millis(20));
        // A deadline already past, set while the reader waits with none: it wakes now.
        s.set_read_deadline(Some(Instant::now())).unwrap();
        assert_eq!(h.join(), Err(io::ErrorKind::TimedOut));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

rt_test! {
    fn std_read_timeout_applies_per_read() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (peer, _) = ln.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(30)));
        assert_eq!(s.read(&mut [0; 8]).unwrap_err().kind(), io::ErrorKind::TimedOut);
        // Unlike a deadline, the next read waits afresh.
        gort::go!(move || {
            gort::time::sleep(Duration::from_millis(5));
            (&peer).write_all(b"late").unwrap();
        });
        let mut b = [0; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");
        assert_eq!(
            s.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}

rt_test! {
    fn close_wakes_a_blocked_reader_and_writer() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (peer, _) = ln.accept().unwrap();
        let r = s.try_clone().unwrap();
        let w = s.try_clone().unwrap();
        let reader = gort::spawn(move || (&r).read(&mut [0; 8]).map_err(|e| e.kind()));
        let writer = gort::spawn(move || {
            let chunk = vec![0u8; 64 * 1024];
            loop {
                if let Err(e) = (&w).write(&chunk) {
                    return e.kind();
                }
            }
        });
        gort::time::sleep(Duration::from_millis(50));
        s.close();
        assert_eq!(reader.join(), Err(io::ErrorKind::NotConnected));
        assert_eq!(writer.join(), io::ErrorKind::NotConnected);
        // Later operations fail too, with Go's message.
        let err = (&s).read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.to_string(), "use of closed network connection");
        // The peer sees the connection closed (end of stream) although `s` still exists.
        let mut rest = Vec::new();
        let _ = (&peer).read_to_end(&mut rest);
    }
}

rt_test! {
    fn closing_a_listener_wakes_accept() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let ln2 = ln.try_clone().unwrap();
        let h = gort::spawn(move || ln2.accept().map(|_| ()).map_err(|e| e.kind()));
        gort::time::sleep(Duration::from_millis(20));
        ln.close();
        assert_eq!(h.join(), Err(io::ErrorKind::NotConnected));
    }
}

/// Makes `s`'s close send a reset (`SO_LINGER` 0).
fn linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a valid option of the right size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

rt_test! {
    fn a_peer_reset_is_an_error_not_a_hang() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (peer, _) = ln.accept().unwrap();
        // The reader is parked when the reset arrives.
        let r = s.try_clone().unwrap();
        let reader = gort::spawn(move || (&r).read(&mut [0; 8]).map_err(|e| e.kind()));
        gort::time::sleep(Duration::from_millis(20));
        linger_zero(&peer);
        drop(peer);
        assert_eq!(reader.join(), Err(io::ErrorKind::ConnectionReset));
        // Writing to a reset connection fails too.
        let err = loop {
            if let Err(e) = s.write(b"after the reset") {
                break e;
            }
        };
        assert!(
            matches!(err.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
    }
}

rt_test! {
    fn connect_to_a_closed_port_is_refused() {
        let addr = {
            let ln = TcpListener::bind("127.0.0.1:0").unwrap();
            ln.local_addr().unwrap()
        };
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

rt_test! {
    fn half_close() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        gort::go!(move || {
            let (mut c, _) = ln.accept().unwrap();
            let mut req = Vec::new();
            c.read_to_end(&mut req).unwrap(); // until the client's FIN
            req.reverse();
            c.write_all(&req).unwrap();
        });
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"abcdef").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        assert_eq!(resp, b"fedcba");
    }
}

rt_test! {
    fn data_and_end_of_stream_in_one_event() {
        // The FIN arrives with (or right after) the data, before the reader wakes: the read
        // that drains the data is short, and the end of stream must still be seen.
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        for _ in 0..20 {
            let mut c = TcpStream::connect(addr).unwrap();
            let (mut s, _) = ln.accept().unwrap();
            // The server reads once first, so its next reads use the short-read shortcut.
            c.write_all(b"first").unwrap();
            let mut buf = [0u8; 1024];
            assert_eq!(s.read(&mut buf).unwrap(), 5);
            c.write_all(b"0123456789").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            gort::time::sleep(Duration::from_millis(2));
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"0123456789");
        }
    }
}

rt_test! {
    fn sixteen_mib_to_a_slow_reader() {
        const LEN: usize = 16 << 20;
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let reader = gort::spawn(move || {
            let (mut c, _) = ln.accept().unwrap();
            let mut got = 0usize;
            let mut buf = vec![0u8; 16 * 1024];
            let mut reads = 0u64;
            loop {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    return got;
                }
                for (i, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, ((got + i) % 251) as u8, "byte {}", got + i);
                }
                got += n;
                reads += 1;
                if reads % 64 == 0 {
                    gort::time::sleep(Duration::from_millis(1)); // slow
                }
            }
        });
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&data).unwrap(); // parks whenever the socket buffer is full
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.join(), LEN);
    }
}

rt_test! {
    fn a_reader_and_a_writer_on_one_socket() {
        // Full duplex: one goroutine reads while another writes the same connection.
        let addr = echo_server();
        let s = TcpStream::connect(addr).unwrap();
        let w = s.try_clone().unwrap();
        const LEN: usize = 1 << 20;
        let writer = gort::spawn(move || {
            let data: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
            (&w).write_all(&data).unwrap();
        });
        let mut got = vec![0u8; LEN];
        (&s).read_exact(&mut got).unwrap();
        writer.join();
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
    }
}

rt_test! {
    fn nonblocking_mode_returns_would_block() {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        ln.set_nonblocking(true).unwrap();
        assert_eq!(ln.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let s = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        s.set_nonblocking(true).unwrap();
        assert_eq!((&s).read(&mut [0; 4]).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}

rt_test! {
    fn std_conversions() {
        let std_ln = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_ln.local_addr().unwrap();
        let ln = TcpListener::from(std_ln);
        let c = TcpStream::from(std::net::TcpStream::connect(addr).unwrap());
        let (s, _) = ln.accept().unwrap();
        let mut std_s = s.into_std().unwrap(); // blocking again
        std_s.write_all(b"z").unwrap();
        let mut b = [0; 1];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"z");
        // A shared stream cannot be taken apart.
        let c2 = c.try_clone().unwrap();
        assert!(c.into_std().is_err());
        drop(c2);
        assert!(ln.into_std().is_ok());
    }
}

#[test]
fn plain_threads_block_on_the_same_types() {
    // No runtime at all: the calls block their thread (in poll(2)), as `std`'s do.
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = ln.accept().unwrap();
        let mut b = [0; 5];
        c.read_exact(&mut b).unwrap();
        c.write_all(&b).unwrap();
        c // kept open
    });
    let mut s = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // the server thread waits in accept/read
    s.write_all(b"plain").unwrap();
    let mut b = [0; 5];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"plain");
    let _open = server.join().unwrap();
    // Deadlines work there too.
    s.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))
        .unwrap();
    assert_eq!(s.read(&mut b).unwrap_err().kind(), io::ErrorKind::TimedOut);
}

#[test]
fn a_goroutine_server_and_a_plain_thread_client() {
    gort::Builder::new().procs(2).run(|| {
        let addr = echo_server();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for i in 0..100u32 {
                s.write_all(&i.to_le_bytes()).unwrap();
                let mut b = [0; 4];
                s.read_exact(&mut b).unwrap();
                assert_eq!(u32::from_le_bytes(b), i);
            }
        });
        // The main goroutine waits for a thread: park on a channel the thread's end closes.
        let done: Chan<()> = Chan::new(0);
        let d = done.clone();
        std::thread::spawn(move || {
            client.join().unwrap();
            d.close();
        });
        assert_eq!(done.recv(), None);
    });
}

#[test]
fn a_server_waiting_in_accept_is_not_deadlocked() {
    if !support::is_child() {
        let out = support::run_child("a_server_waiting_in_accept_is_not_deadlocked", &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("deadlock"), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("served 1"));
        return;
    }
    gort::Builder::new().procs(1).run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let served: Chan<usize> = Chan::new(0);
        let tx = served.clone();
        gort::go!(move || {
            let (mut c, _) = ln.accept().unwrap();
            let mut b = [0; 1];
            c.read_exact(&mut b).unwrap();
            tx.send(1);
        });
        // A client from outside the runtime, after every goroutine has been asleep for a
        // while: main in recv, the server in accept. Go reports no deadlock here.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"!").unwrap();
        });
        println!("served {}", served.recv().unwrap());
    });
}

#[test]
fn goroutine_dump_says_io_wait() {
    gort::Builder::new().procs(1).run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let ln2 = ln.try_clone().unwrap();
        let h = gort::spawn(move || ln2.accept().map(|_| ()).map_err(|e| e.kind()));
        gort::time::sleep(Duration::from_millis(20));
        let mut dump = Vec::new();
        gort::debug::write_goroutines(&mut dump).unwrap();
        let dump = String::from_utf8(dump).unwrap();
        assert!(dump.contains("[IO wait]"), "{dump}");
        // The user's call, not gort's socket loop (issue 22 §5).
        assert!(
            dump.contains("[IO wait]:\n\truntime/tests/net_tcp.rs:501:"),
            "the accept's line: {dump}"
        );
        ln.close();
        assert!(h.join().is_err());
        // A read, through `Read for TcpStream`, and a queued second reader.
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let _b = ln.accept().unwrap();
        let read_line = line!() + 4;
        for _ in 0..2 {
            let mut r = a.try_clone().unwrap();
            gort::go!(move || {
                let _ = r.read(&mut [0u8; 4]); // the line the dump must name
            });
        }
        gort::time::sleep(Duration::from_millis(20));
        let mut dump = Vec::new();
        gort::debug::write_goroutines(&mut dump).unwrap();
        let dump = String::from_utf8(dump).unwrap();
        let line = format!("runtime/tests/net_tcp.rs:{read_line}:");
        assert_eq!(
            dump.matches(&line).count(),
            2,
            "both readers at {line}: {dump}"
        );
        assert!(!dump.contains("src/net/"), "{dump}");
        a.close();
    });
}

#[test]
fn shutdown_wakes_a_blocked_poller_while_other_runtimes_poll() {
    // Runtime B keeps its Ms polling (a loopback ping-pong); runtimes A come and go, each with
    // a goroutine waiting in accept, so that an idle M of A blocks in the poll. Returning from
    // A's main must wake that M even though B's non-blocking polls see every poller event too.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let b = std::thread::spawn(move || {
        gort::Builder::new().procs(2).run(move || {
            let addr = echo_server();
            let mut s = TcpStream::connect(addr).unwrap();
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) {
                s.write_all(&n.to_le_bytes()).unwrap();
                let mut back = [0u8; 8];
                s.read_exact(&mut back).unwrap();
                assert_eq!(u64::from_le_bytes(back), n);
                n += 1;
            }
            n
        })
    });
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..50 {
            gort::Builder::new().procs(2).run(|| {
                let ln = TcpListener::bind("127.0.0.1:0").unwrap();
                gort::go!(move || {
                    let _ = ln.accept();
                });
                gort::time::sleep(Duration::from_millis(2)); // the other M idles: in the poll
            });
        }
        done.send(()).unwrap();
    });
    // Bounded: a lost wake-up fails here instead of hanging the suite.
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("a runtime's shutdown hung on an M blocked in the poll");
    stop.store(true, Ordering::Relaxed);
    assert!(b.join().unwrap() > 0);
}

rt_test! {
    fn a_zero_byte_read_or_write_returns_at_once() {
        // Go's FD.Read / FD.Write on an empty buffer: 0 at once. After a short read gort's next
        // read waits for readiness before it tries; an empty read must not (no data is coming).
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (s, _) = ln.accept().unwrap();
        (&c).write_all(b"ab").unwrap();
        let done: Chan<Vec<usize>> = Chan::new(1);
        let d = done.clone();
        gort::go!(move || {
            let mut buf = [0u8; 8];
            let mut got = vec![(&s).read(&mut buf).unwrap()]; // 2 of 8: a short read
            got.push((&s).read(&mut []).unwrap());
            got.push((&s).write(&[]).unwrap());
            s.close();
            // A closed socket fails even an empty read.
            got.push(usize::from((&s).read(&mut []).is_err()));
            d.send(got);
        });
        let got = gort::select! {
            recv(done) -> v => v.expect("sent"),
            recv(gort::time::after(Duration::from_secs(5))) -> _ => {
                panic!("an empty read waited for data")
            }
        };
        assert_eq!(got, vec![2, 0, 0, 1]);
    }
}

rt_test! {
    fn an_accept_racing_close_fails_with_the_closed_error() {
        // A close between the accept's check and its system call made the call fail on the
        // shut-down socket with EINVAL (`InvalidInput`), a few times in 20,000; every
        // operation on a closed socket must fail with `NotConnected`.
        let mut kinds = std::collections::BTreeMap::new();
        for i in 0..20_000u32 {
            let ln = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let l2 = ln.clone();
            let h = gort::spawn(move || l2.accept().map(|_| ()).map_err(|e| e.kind()));
            if i % 2 == 0 {
                gort::yield_now();
            }
            ln.close();
            if let Err(k) = h.join() {
                *kinds.entry(format!("{k:?}")).or_insert(0) += 1;
            }
        }
        assert!(
            kinds.keys().all(|k| k == "NotConnected"),
            "errors of accepts racing close: {kinds:?}"
        );
    }
}

#[gort::test(procs = 2)]
fn a_dial_to_a_local_port_nobody_listens_on_never_connects_to_itself() {
    // The kernel walks the ephemeral ports for one destination; dialling a free port of that
    // range again and again, it once picks the target port itself as the source port, and
    // the SYN meets itself (simultaneous open): a connection to itself that reads back its
    // own writes. Go's dialer closes such a connection and dials again.
    // A free port in the ephemeral range, of the parity Linux gives `connect` (`bind` to port
    // 0 prefers the other one): the neighbour of one `bind` picked, if it is free too.
    let port = (0..100)
        .find_map(|_| {
            let ln = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let p = ln.local_addr().unwrap().port() ^ 1;
            std::net::TcpListener::bind(("127.0.0.1", p))
                .ok()
                .map(|_| p)
        })
        .expect("a free port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut refused = 0;
    for _ in 0..40_000 {
        match TcpStream::connect(addr) {
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
                refused += 1;
            }
            Ok(s) => {
                let (l, p) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
                assert_ne!(l, p, "a dial connected to itself");
            }
        }
    }
    assert!(refused > 0);
}

rt_test! {
    fn close_with_linger_zero_resets_the_connection() {
        // Go: SetLinger(0) then Close sends a reset, and the peer's read fails; gort's close
        // shut the connection down instead (a FIN), and the peer read an end of stream.
        for through_gort in [true, false] {
            let ln = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
            let (s, _) = ln.accept().unwrap();
            if through_gort {
                s.set_linger(Some(Duration::ZERO)).unwrap();
            } else {
                linger_zero(&s); // on the raw descriptor
            }
            // The peer is parked in its read when the reset arrives.
            let reader = gort::spawn(move || (&c).read(&mut [0; 8]).map_err(|e| e.kind()));
            gort::time::sleep(Duration::from_millis(10));
            s.close();
            assert_eq!(reader.join(), Err(io::ErrorKind::ConnectionReset));
        }
    }
}

/// A listener whose accept queue is full (backlog 0, filled, never accepted): a connect to it
/// waits, its SYN dropped.
fn full_listener() -> (
    std::os::fd::OwnedFd,
    std::net::SocketAddr,
    Vec<std::net::TcpStream>,
) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns; the address structure
    // is a valid sockaddr_in for loopback with port 0.
    let (fd, addr) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        libc::getsockname(fd, (&mut got as *mut libc::sockaddr_in).cast(), &mut glen);
        let port = u16::from_be(got.sin_port);
        (
            std::os::fd::OwnedFd::from_raw_fd(fd),
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
    };
    let mut fill = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fill.push(s);
        }
    }
    (fd, addr, fill)
}

/// Go's DialContext: cancelling the context stops a connect that is waiting (its SYN
/// dropped by a full accept queue), with the context's error; a context done before the call
/// fails it at once.
#[gort::test(procs = 2)]
fn connect_context_stops_when_the_context_is_cancelled() {
    let (_ln, addr, _fill) = full_listener();
    let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
    gort::go!(move || {
        gort::time::sleep(Duration::from_millis(100));
        cancel.cancel();
    });
    let t = std::time::Instant::now();
    let e = TcpStream::connect_context(&ctx, addr).unwrap_err();
    assert_eq!(e.to_string(), "context canceled");
    assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
    assert!(t.elapsed() >= Duration::from_millis(100), "it did not wait");
    assert!(t.elapsed() < Duration::from_secs(20));
    let e = TcpStream::connect_context(&ctx, addr).unwrap_err();
    assert_eq!(e.to_string(), "context canceled");
}
