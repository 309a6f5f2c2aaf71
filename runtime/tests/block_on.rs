//! `gort::block_on` and `gort::time::Sleep`: futures on goroutines, woken from goroutines,
//! plain threads, gort's timers and another runtime (tokio's).

#[macro_use]
mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A one-shot value: completes once `set` ran, wherever it runs.
#[derive(Clone, Default)]
struct Slot(Arc<Mutex<(Option<u64>, Option<Waker>)>>);

impl Slot {
    fn set(&self, v: u64) {
        let w = {
            let mut s = self.0.lock().unwrap();
            s.0 = Some(v);
            s.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Future for Slot {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut s = self.0.lock().unwrap();
        match s.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

rt_test! {
    /// Goroutines wake each other's futures: every round trip completes, none is lost.
    fn wakers_from_goroutines_lose_no_wake_up() {
        const PAIRS: u64 = 8;
        const ROUNDS: u64 = 500;
        let wg = gort::WaitGroup::new();
        let total = Arc::new(AtomicU64::new(0));
        for _ in 0..PAIRS {
            let (ping, pong) = (Slot::default(), Slot::default());
            let (p2, q2) = (ping.clone(), pong.clone());
            wg.add(2);
            let w = wg.clone();
            gort::go!(move || {
                for i in 0..ROUNDS {
                    p2.set(i);
                    assert_eq!(gort::block_on(q2.clone()), i + 1);
                }
                w.done();
            });
            let (w, t) = (wg.clone(), total.clone());
            gort::go!(move || {
                for _ in 0..ROUNDS {
                    let v = gort::block_on(ping.clone());
                    pong.set(v + 1);
                    t.fetch_add(1, Ordering::Relaxed);
                }
                w.done();
            });
        }
        wg.wait();
        assert_eq!(total.load(Ordering::Relaxed), PAIRS * ROUNDS);
    }
}

#[gort::test(procs = 2)]
fn wakers_from_plain_threads_wake_parked_goroutines() {
    let slot = Slot::default();
    let s = slot.clone();
    let back = Slot::default();
    let b = back.clone();
    let t = std::thread::spawn(move || {
        for i in 0..300 {
            s.set(i);
            // A plain thread's block_on blocks the thread.
            assert_eq!(gort::block_on(b.clone()), i * 2);
        }
    });
    for i in 0..300 {
        let v = gort::block_on(slot.clone());
        assert_eq!(v, i);
        back.set(v * 2);
    }
    t.join().unwrap();
}

#[test]
fn another_runtimes_threads_wake_a_goroutine() {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let handle = tokio_rt.handle().clone();
    gort::Builder::new().procs(1).run(move || {
        let wg = gort::WaitGroup::new();
        for i in 0..4u64 {
            wg.add(1);
            let (w, h) = (wg.clone(), handle.clone());
            gort::go!(move || {
                // A task of tokio's, awaited from a goroutine: tokio's worker wakes it.
                let got = gort::block_on(h.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    i * 10
                }));
                assert_eq!(got.unwrap(), i * 10);
                w.done();
            });
        }
        wg.wait();
    });
}

#[gort::test(procs = 1)]
fn sleep_waits_its_time_and_lets_others_run() {
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    gort::go!(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let t = Instant::now();
    gort::block_on(gort::time::Sleep::new(Duration::from_millis(30)));
    assert!(t.elapsed() >= Duration::from_millis(30));
    // The goroutine ran while main's future slept (P=1).
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // A past deadline completes at once.
    let t = Instant::now();
    gort::block_on(gort::time::Sleep::until(
        Instant::now() - Duration::from_secs(1),
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
}

/// Two sleeps raced in one future: the earlier completes it, and the later one is dropped
/// (cancelled) without waking anything afterwards.
#[gort::test(procs = 1)]
fn a_dropped_sleep_is_cancelled() {
    struct First(gort::time::Sleep, gort::time::Sleep);
    impl Future for First {
        type Output = u8;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
            if Pin::new(&mut self.0).poll(cx).is_ready() {
                return Poll::Ready(0);
            }
            if Pin::new(&mut self.1).poll(cx).is_ready() {
                return Poll::Ready(1);
            }
            Poll::Pending
        }
    }
    for _ in 0..50 {
        let won = gort::block_on(First(
            gort::time::Sleep::new(Duration::from_secs(60)),
            gort::time::Sleep::new(Duration::from_millis(1)),
        ));
        assert_eq!(won, 1);
    }
}

#[test]
#[should_panic(expected = "gort::time::Sleep made outside a gort runtime")]
fn a_sleep_outside_a_runtime_panics_with_the_reason() {
    drop(gort::time::Sleep::new(Duration::from_millis(1)));
}

/// A plain thread awaits a Sleep of a runtime that then shuts down: the sleep ends instead of
/// waiting for a timer that will never fire.
#[test]
fn a_sleep_ends_when_its_runtime_shuts_down() {
    let _dog = support::watchdog(Duration::from_secs(20), "a sleep outlived its runtime");
    let (tx, rx) = std::sync::mpsc::channel();
    gort::Builder::new().procs(1).run(move || {
        let sleep = gort::time::Sleep::new(Duration::from_secs(3600));
        tx.send(sleep).unwrap();
        // Main returns while the plain thread below waits on the sleep.
        gort::time::sleep(Duration::from_millis(20));
    });
    let sleep = rx.recv().unwrap();
    let t = Instant::now();
    gort::block_on(sleep);
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// A future nothing can wake, in the last goroutine: Go's deadlock report, not a silent hang.
#[test]
fn a_future_nobody_can_wake_is_a_deadlock() {
    support::expect_deadlock(1, || {
        gort::block_on(std::future::pending::<()>());
    });
}

/// A panic inside the future unwinds out of block_on into the goroutine's frames, where
/// `recover` sees it.
#[gort::test(procs = 1)]
fn a_panicking_future_is_recovered_like_any_panic() {
    let got = gort::frame! {
        defer!(|r: &mut gort::Named<Option<String>>| {
            if let Some(p) = gort::recover() {
                r.set(Some(p.to_string()));
            }
        });
        gort::block_on(async {
            gort::time::Sleep::new(Duration::from_millis(1)).await;
            panic!("in the future");
        });
        None
    };
    assert_eq!(got.as_deref(), Some("in the future"));
}
