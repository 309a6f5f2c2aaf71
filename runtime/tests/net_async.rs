//! The async side of gort's sockets: tokio's and futures-io's traits over the poller, inside
//! `block_on`, with deadlines, close, and blocking calls in the same direction.
#![cfg(all(feature = "tokio-io", feature = "futures-io"))]

mod support;

use std::future::poll_fn;
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream, UnixStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Async clients (tokio's extension traits over gort's TcpStream) against a blocking echo
/// server; many at once on two processors.
#[gort::test(procs = 2)]
fn async_clients_talk_to_a_blocking_server() {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    gort::go!(move || {
        for c in ln.incoming() {
            let mut c = c.unwrap();
            gort::go!(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match Read::read(&mut c, &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => Write::write_all(&mut c, &buf[..n]).unwrap(),
                    }
                }
            });
        }
    });
    let wg = gort::WaitGroup::new();
    for i in 0..50u32 {
        wg.add(1);
        let w = wg.clone();
        gort::go!(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            gort::block_on(async {
                for round in 0..20u32 {
                    let msg = format!("client {i} round {round}");
                    AsyncWriteExt::write_all(&mut s, msg.as_bytes())
                        .await
                        .unwrap();
                    let mut back = vec![0u8; msg.len()];
                    AsyncReadExt::read_exact(&mut s, &mut back).await.unwrap();
                    assert_eq!(back, msg.as_bytes());
                }
                AsyncWriteExt::shutdown(&mut s).await.unwrap();
                let mut rest = Vec::new();
                AsyncReadExt::read_to_end(&mut s, &mut rest).await.unwrap();
                assert!(rest.is_empty());
            });
            w.done();
        });
    }
    wg.wait();
}

/// A large transfer both ways between two async ends, through futures-io's traits on one side
/// and tokio's on the other: the send buffers fill and every byte arrives in order.
#[gort::test(procs = 2)]
fn large_transfers_fill_the_buffers_and_arrive_whole() {
    const LEN: usize = 8 << 20;
    let (a, b) = UnixStream::pair().unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let d = data.clone();
    let h = gort::spawn(move || {
        // futures-io: poll_write until all is written.
        let mut at = 0;
        while at < d.len() {
            let mut s = &a;
            at += gort::block_on(poll_fn(|cx| {
                futures_io::AsyncWrite::poll_write(Pin::new(&mut s), cx, &d[at..])
            }))
            .unwrap();
        }
        a.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(LEN);
    let mut b = b;
    gort::block_on(AsyncReadExt::read_to_end(&mut b, &mut got)).unwrap();
    h.join();
    assert!(got == data, "the bytes differ");
}

/// A read deadline ends a task's pending read with Go's `i/o timeout`, from the runtime's
/// timer (nobody polls the task meanwhile), and a close from another goroutine ends another.
#[gort::test(procs = 1)]
fn deadlines_and_close_end_a_pending_task() {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    let (mut s, _) = ln.accept().unwrap();
    s.set_read_deadline(Some(Instant::now() + Duration::from_millis(50)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 8];
    let e = gort::block_on(AsyncReadExt::read(&mut s, &mut buf)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(e.to_string(), "i/o timeout");
    assert!(t.elapsed() >= Duration::from_millis(50));
    s.set_read_deadline(None).unwrap();

    let s2 = s.try_clone().unwrap();
    gort::go!(move || {
        gort::time::sleep(Duration::from_millis(20));
        s2.close();
    });
    let e = gort::block_on(AsyncReadExt::read(&mut s, &mut buf)).unwrap_err();
    assert_eq!(e.to_string(), "use of closed network connection");
    drop(c);
}

/// A blocking reader and a task read one socket's direction at once: each message goes to one
/// of them, nothing is lost, nothing throws (the direction's word has one waiter at a time).
#[gort::test(procs = 2)]
fn a_task_and_a_blocking_reader_share_a_direction() {
    let _dog = support::watchdog(Duration::from_secs(60), "shared direction");
    let (a, b) = UnixStream::pair().unwrap();
    let b2 = b.try_clone().unwrap();
    const MSGS: usize = 200;
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done: gort::Chan<()> = gort::Chan::new(0);
    for task in [false, true] {
        let (b, got, done) = (b2.try_clone().unwrap(), got.clone(), done.clone());
        gort::go!(move || {
            let mut buf = [0u8; 1];
            loop {
                let r = if task {
                    gort::block_on(poll_fn(|cx| b.poll_read(cx, &mut buf)))
                } else {
                    Read::read(&mut &b, &mut buf)
                };
                match r {
                    Ok(1) => {
                        if got.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == MSGS {
                            done.close();
                        }
                    }
                    _ => return,
                }
            }
        });
    }
    for _ in 0..MSGS {
        Write::write_all(&mut &a, b"x").unwrap();
        gort::yield_now();
    }
    done.recv();
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), MSGS);
    b.close();
}

/// Plain threads read and write a gort socket through a task while the runtime's only
/// goroutine sleeps (its M asleep with nothing to poll for when the task registers, sysmon
/// in its deep sleep of up to a second): the registration wakes an M, which polls, so the
/// read completes at the write, long before the goroutine wakes (without that wake-up it
/// waited for the goroutine's timer or sysmon's next look).
#[test]
fn a_plain_threads_task_is_polled_by_an_idle_runtime() {
    let _dog = support::watchdog(Duration::from_secs(30), "plain-thread task");
    let (a, b) = UnixStream::pair().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    gort::Builder::new().procs(1).run(move || {
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50)); // the runtime is idle by now
            let mut buf = [0u8; 5];
            let mut b = b;
            gort::block_on(AsyncReadExt::read_exact(&mut b, &mut buf)).unwrap();
            assert_eq!(&buf, b"hello");
            done_tx.send(()).unwrap();
        });
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            Write::write_all(&mut &a, b"hello").unwrap();
        });
        gort::time::sleep(Duration::from_millis(800));
        assert!(
            done_rx.try_recv().is_ok(),
            "the read waited for the runtime to wake up"
        );
        gort::blocking(|| {
            reader.join().unwrap();
            writer.join().unwrap();
        });
    });
}

/// With no runtime in the process nobody polls: a plain thread's task on a gort socket fails
/// with the reason instead of waiting for ever. (In a child: other tests' runtimes would
/// serve it.)
#[test]
fn a_task_with_no_runtime_to_poll_fails_clearly() {
    if !support::is_child() {
        let out = support::run_child("a_task_with_no_runtime_to_poll_fails_clearly", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let (_a, mut b) = UnixStream::pair().unwrap();
    let mut buf = [0u8; 1];
    let e = gort::block_on(AsyncReadExt::read(&mut b, &mut buf)).unwrap_err();
    assert!(
        e.to_string().contains("needs a running gort runtime"),
        "{e}"
    );
}

/// A waker that counts its wakes.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The poll shortcuts (`Sock::poll_stream`): a short read leaves the direction drained, so
/// the next poll waits for an edge; a poll whose registration still stands returns `Pending`
/// at once. Neither may lose data: what arrived between two polls (an edge with nobody
/// registered, which the poller may deliver only after the next poll registers), what
/// arrives while registered, and the peer's close after data (which sends no edge of its own
/// once read) are all seen.
#[gort::test(procs = 1)]
fn poll_shortcuts_lose_no_readiness() {
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::{Context, Poll, Waker};
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    let (s, _) = ln.accept().unwrap();
    let count = std::sync::Arc::new(Count(Default::default()));
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 64];
    // Polls until a read completes: each `Pending` must be followed by a wake-up (within
    // 10 s), as a future's contract demands; returns the bytes read.
    let read = |cx: &mut Context<'_>, buf: &mut [u8]| -> usize {
        loop {
            let seen = count.0.load(SeqCst);
            match s.poll_read(cx, buf) {
                Poll::Ready(r) => return r.unwrap(),
                Poll::Pending => {
                    let t = Instant::now();
                    while count.0.load(SeqCst) == seen {
                        assert!(t.elapsed() < Duration::from_secs(10), "no wake-up came");
                        gort::time::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
    };

    // Nothing there: registers; a spurious poll finds the registration standing.
    assert!(s.poll_read(&mut cx, &mut buf).is_pending());
    assert!(s.poll_read(&mut cx, &mut buf).is_pending());
    assert_eq!(count.0.load(SeqCst), 0);
    Write::write_all(&mut peer, b"one").unwrap();
    assert_eq!(read(&mut cx, &mut buf), 3); // a short read: drained
                                            // Data arrives before the next poll, while nobody is registered.
    Write::write_all(&mut peer, b"two").unwrap();
    gort::time::sleep(Duration::from_millis(20));
    assert_eq!(read(&mut cx, &mut buf), 3);
    assert_eq!(&buf[..3], b"two");
    // Drained again: the next poll registers, the data wakes it.
    Write::write_all(&mut peer, b"three").unwrap();
    assert_eq!(read(&mut cx, &mut buf), 5);
    assert_eq!(&buf[..5], b"three");
    // Data and the close together: a short read drains, the next read sees the end.
    Write::write_all(&mut peer, b"four").unwrap();
    drop(peer);
    gort::time::sleep(Duration::from_millis(20));
    assert_eq!(read(&mut cx, &mut buf), 4);
    assert_eq!(read(&mut cx, &mut buf), 0);
}
