//! Channels and select! through the public API: semantics, plain-thread interop, bounded
//! stress (every value received exactly once), and lost-wake-up races around `close`.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gort::{select, Chan};

rt_test! {
    fn unbuffered_send_completes_only_when_received() {
        let c = Chan::new(0);
        let received = Arc::new(AtomicUsize::new(0));
        let (c2, r2) = (c.clone(), received.clone());
        gort::go!(move || {
            gort::time::sleep(Duration::from_millis(5));
            r2.store(1, Ordering::SeqCst);
            assert_eq!(c2.recv(), Some(7));
        });
        c.send(7);
        assert_eq!(received.load(Ordering::SeqCst), 1);
    }
}

rt_test! {
    fn buffered_fifo_try_ops_and_close() {
        let c = Chan::new(2);
        c.send(1);
        assert!(matches!(c.try_send(2), Ok(())));
        assert!(matches!(c.try_send(3), Err(gort::chan::TrySendError::Full(3))));
        assert_eq!(c.len(), 2);
        c.close();
        assert!(matches!(c.try_send(4), Err(gort::chan::TrySendError::Closed(4))));
        assert_eq!(c.try_recv(), Ok(1));
        assert_eq!(c.recv(), Some(2));
        assert_eq!(c.recv(), None);
        assert_eq!(c.try_recv(), Err(gort::chan::TryRecvError::Closed));
        let e: Chan<u8> = Chan::new(1);
        assert_eq!(e.try_recv(), Err(gort::chan::TryRecvError::Empty));
    }
}

rt_test! {
    fn timeouts_hand_the_value_back() {
        let c: Chan<String> = Chan::new(0);
        let t = Instant::now();
        match c.send_timeout("kept".to_string(), Duration::from_millis(10)) {
            Err(gort::chan::SendTimeoutError::Timeout(v)) => assert_eq!(v, "kept"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() >= Duration::from_millis(10));
        assert_eq!(
            c.recv_timeout(Duration::from_millis(5)),
            Err(gort::chan::RecvTimeoutError::Timeout)
        );
        let c2 = c.clone();
        gort::go!(move || c2.send("late".to_string()));
        assert_eq!(c.recv_timeout(Duration::from_secs(5)).as_deref(), Ok("late"));
        c.close();
        assert_eq!(
            c.recv_timeout(Duration::from_secs(5)),
            Err(gort::chan::RecvTimeoutError::Closed)
        );
    }
}

#[test]
fn plain_threads_and_goroutines_share_channels() {
    gort::Builder::new().procs(2).run(|| {
        let to_thread = Chan::new(0);
        let from_thread = Chan::new(0);
        let (rx, tx) = (to_thread.clone(), from_thread.clone());
        let t = std::thread::spawn(move || {
            // A plain thread blocks (it does not park) and wakes goroutines.
            for v in &rx {
                tx.send(v * 2);
            }
            tx.close();
        });
        for i in 0..100 {
            to_thread.send(i);
            assert_eq!(from_thread.recv(), Some(i * 2));
        }
        to_thread.close();
        assert_eq!(from_thread.recv(), None);
        t.join().unwrap();
    });
}

rt_test! {
    fn select_is_fair_between_ready_cases() {
        let (a, b) = (Chan::new(1), Chan::new(1));
        let mut hits = [0u32; 2];
        for _ in 0..2000 {
            a.try_send(()).ok();
            b.try_send(()).ok();
            select! {
                recv(a) -> _ => hits[0] += 1,
                recv(b) -> _ => hits[1] += 1,
            }
        }
        // Uniform choice: each side wins about half; 40% is far outside the noise.
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
    }
}

rt_test! {
    fn select_parks_on_all_channels_and_one_wins() {
        for round in 0..200 {
            let (a, b, c) = (Chan::<u32>::new(0), Chan::<u32>::new(0), Chan::<u32>::new(0));
            let (a2, b2) = (a.clone(), b.clone());
            gort::go!(move || {
                if round % 2 == 0 {
                    a2.send(1);
                } else {
                    b2.send(2);
                }
            });
            let got = select! {
                recv(a) -> v => v,
                recv(b) -> v => v,
                send(c, 9) => unreachable!("nobody receives c"),
            };
            assert_eq!(got, Some(if round % 2 == 0 { 1 } else { 2 }));
        }
    }
}

/// Many producers and consumers over one channel, with sends and receives also done through
/// select!; every value is received exactly once. Bounded: a fixed count, checked in time.
fn exactly_once(cap: usize, producers: usize, consumers: usize, per: usize) {
    let t0 = Instant::now();
    let c = Chan::new(cap);
    let side: Chan<usize> = Chan::new(cap);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let prod = gort::WaitGroup::new();
    let cons = gort::WaitGroup::new();
    for p in 0..producers {
        prod.add(1);
        let (c, side, prod) = (c.clone(), side.clone(), prod.clone());
        gort::go!(move || {
            for i in 0..per {
                let v = p * per + i;
                if i % 3 == 0 {
                    // Either channel; the consumers read both.
                    select! {
                        send(c, v) => {}
                        send(side, v) => {}
                    }
                } else {
                    c.send(v);
                }
            }
            prod.done();
        });
    }
    for _ in 0..consumers {
        cons.add(1);
        let (c, side, seen, cons) = (c.clone(), side.clone(), seen.clone(), cons.clone());
        gort::go!(move || {
            let (mut c, mut side) = (Some(c), Some(side));
            while c.is_some() || side.is_some() {
                select! {
                    recv(c) -> v => match v {
                        Some(v) => assert!(seen.lock().unwrap().insert(v), "{v} twice"),
                        None => c = None,
                    },
                    recv(side) -> v => match v {
                        Some(v) => assert!(seen.lock().unwrap().insert(v), "{v} twice"),
                        None => side = None,
                    },
                }
            }
            cons.done();
        });
    }
    prod.wait();
    c.close();
    side.close();
    cons.wait();
    assert_eq!(seen.lock().unwrap().len(), producers * per);
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "stress took too long"
    );
}

rt_test! {
    fn stress_unbuffered_every_value_once() {
        exactly_once(0, 8, 8, support::stress(2000));
    }
}

rt_test! {
    fn stress_buffered_every_value_once() {
        exactly_once(16, 8, 4, support::stress(2000));
    }
}

rt_test! {
    fn close_wakes_every_blocked_receiver_and_select() {
        for _ in 0..support::stress(200) {
            let c: Chan<u8> = Chan::new(0);
            let other: Chan<u8> = Chan::new(0);
            let woke = gort::WaitGroup::new();
            for k in 0..6 {
                woke.add(1);
                let (c, other, woke) = (c.clone(), other.clone(), woke.clone());
                gort::go!(move || {
                    if k % 2 == 0 {
                        assert_eq!(c.recv(), None);
                    } else {
                        select! {
                            recv(c) -> v => assert_eq!(v, None),
                            recv(other) -> _ => unreachable!(),
                        }
                    }
                    woke.done();
                });
            }
            // Race the close with the goroutines getting to their receives.
            gort::yield_now();
            c.close();
            woke.wait();
        }
    }
}

rt_test! {
    fn close_makes_every_blocked_sender_panic() {
        for _ in 0..support::stress(100) {
            let c: Chan<u8> = Chan::new(0);
            let panicked = Arc::new(AtomicUsize::new(0));
            let done = gort::WaitGroup::new();
            for k in 0..4 {
                done.add(1);
                let (c, panicked, done) = (c.clone(), panicked.clone(), done.clone());
                gort::go!(move || {
                    defer!(done.done());
                    defer!(move || {
                        let p = gort::recover().expect("a send on a closed channel panics");
                        assert_eq!(p.to_string(), "send on closed channel");
                        assert!(p.runtime_error().is_some());
                        panicked.fetch_add(1, Ordering::SeqCst);
                    });
                    if k % 2 == 0 {
                        c.send(k);
                    } else {
                        select! { send(c, k) => {} }
                    }
                });
            }
            gort::yield_now();
            c.close();
            done.wait();
            assert_eq!(panicked.load(Ordering::SeqCst), 4);
        }
    }
}

/// Sends its value on `to` when dropped (a send that blocks until someone receives).
struct SendsOnDrop {
    to: Chan<u64>,
    v: u64,
}

impl Drop for SendsOnDrop {
    fn drop(&mut self) {
        self.to.send(self.v);
    }
}

rt_test! {
    fn a_value_dropped_by_a_failed_send_may_block_on_a_channel() {
        // A send parked on a channel that is then closed panics, and the value it held is
        // dropped with its operation, during the unwind. That drop blocks on another channel
        // (its thread waits: the goroutine is unwinding, `sched::may_park`) while the failed
        // send's operation still holds the goroutine's operation block, so it takes a heap
        // block; afterwards the goroutine's block serves parked operations again. (If the
        // close comes before the send parks, the value is dropped before any operation
        // exists: the test still passes, on a path other tests cover.)
        let c: Chan<SendsOnDrop> = Chan::new(0);
        let report = Chan::new(0);
        let done = gort::WaitGroup::new();
        done.add(1);
        let (c2, report2, done2) = (c.clone(), report.clone(), done.clone());
        gort::go!(move || {
            defer!(done2.done());
            defer!(|| {
                let p = gort::recover().expect("a send on a closed channel panics");
                assert_eq!(p.to_string(), "send on closed channel");
            });
            c2.send(SendsOnDrop { to: report2, v: 42 });
        });
        gort::time::sleep(Duration::from_millis(2));
        c.close();
        // Late, so that the dropped value's send has to wait.
        gort::time::sleep(Duration::from_millis(5));
        assert_eq!(report.recv(), Some(42), "the dropped value's own send got through");
        done.wait();
        let wg = gort::WaitGroup::new();
        let chans: Vec<Chan<u64>> = (0..64).map(|_| Chan::new(0)).collect();
        for ch in &chans {
            wg.add(1);
            let (ch, wg) = (ch.clone(), wg.clone());
            gort::go!(move || {
                assert_eq!(ch.recv(), Some(7));
                wg.done();
            });
        }
        for ch in &chans {
            ch.send(7);
        }
        wg.wait();
    }
}

rt_test! {
    fn a_select_that_lost_leaves_no_stale_waiter() {
        // The select takes `a`; a later send on `b` must find no waiter (else the value would
        // be handed to a goroutine that no longer waits).
        let (a, b) = (Chan::new(0), Chan::new(0));
        let a2 = a.clone();
        gort::go!(move || a2.send(1u8));
        select! {
            recv(a) -> v => assert_eq!(v, Some(1)),
            recv(b) -> _ => unreachable!(),
        }
        assert!(matches!(b.try_send(2u8), Err(gort::chan::TrySendError::Full(2))));
    }
}

#[test]
fn deadlock_is_reraised_by_run() {
    if !support::is_child() {
        let out = support::run_child("deadlock_is_reraised_by_run", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("fatal error: all goroutines are asleep - deadlock!"),
            "{err}"
        );
        assert!(err.contains("goroutine 1 [select]:"), "{err}");
        assert!(err.contains("[chan send]:"), "{err}");
        return;
    }
    // The child test binary runs one test on its own thread beside the harness's main thread:
    // `#[gort::test]` tolerates that thread, `gort::run` does not (see docs), so use
    // `__private::test`, which is what `#[gort::test]` expands to.
    support::expect_deadlock(2, || {
        let (a, b) = (Chan::<u8>::new(0), Chan::<u8>::new(0));
        let a2 = a.clone();
        gort::go!(move || a2.send(1)); // nobody receives a
        select! {
            recv(b) -> _ => {}
            send(b, 2) => {}
        }
    });
}

#[test]
fn a_sleeping_goroutine_is_not_a_deadlock() {
    gort::__private::test(Some(1), None, || {
        let c = Chan::new(0);
        let c2 = c.clone();
        gort::go!(move || {
            gort::time::sleep(Duration::from_millis(30));
            c2.send(1);
        });
        assert_eq!(c.recv(), Some(1));
    });
}

/// Runs `rounds` selects that block with two cases on the same channel and returns how often
/// the first case won. At P=1 the selecting goroutine has parked before the main goroutine
/// completes the operation (`yield_now` runs it to its park), so the blocked path decides.
fn blocked_select_first_case_wins(sends: bool, rounds: usize) -> usize {
    let ch: Chan<u32> = Chan::new(0);
    let won: Chan<usize> = Chan::new(1);
    let mut first = 0;
    for _ in 0..rounds {
        let (c, w) = (ch.clone(), won.clone());
        if sends {
            gort::go!(move || select! {
                send(c, 0) => w.send(0),
                send(c, 1) => w.send(1),
            });
            gort::yield_now();
            let v = ch.recv().expect("open");
            let w = won.recv().expect("open");
            assert_eq!(w, v as usize, "the value sent is the winning case's");
            first += usize::from(w == 0);
            continue;
        } else {
            gort::go!(move || select! {
                recv(c) -> _ => w.send(0),
                recv(c) -> _ => w.send(1),
            });
            gort::yield_now();
            ch.send(7);
        }
        if won.recv() == Some(0) {
            first += 1;
        }
    }
    first
}

rt_test! {
    fn a_blocked_select_with_two_cases_on_one_channel_is_fair() {
        // Go is about 50/50; gort used to enqueue in source order, so the first case won 100 of
        // 100. 1000 rounds: a fair coin lands outside 400..=600 with probability < 1e-9.
        let rounds = 1000;
        for sends in [false, true] {
            let first = blocked_select_first_case_wins(sends, rounds);
            assert!(
                (400..=600).contains(&first),
                "sends={sends}: the first case won {first} of {rounds}"
            );
        }
    }
}

rt_test! {
    fn a_go_closure_may_mutate_what_it_captured() {
        // Go code does this constantly (test/chan/powser1.go): `go func() { x++; ... }()`.
        let out = Chan::new(0);
        let o = out.clone();
        let mut x = 0u32;
        gort::go!(move || {
            for _ in 0..3 {
                x += 1;
            }
            o.send(x);
        });
        assert_eq!(out.recv(), Some(3));
        let mut log = Vec::new();
        let o = out.clone();
        let push = move |v: u32| {
            log.push(v);
            o.send(log.len() as u32);
        };
        gort::go!(push(5)); // the call form with an FnMut function value
        assert_eq!(out.recv(), Some(1));
    }
}

#[gort::test]
fn make_chan_refuses_sizes_that_cannot_exist() {
    #[gort::func]
    fn make(cap: usize) -> String {
        defer!(|r| {
            if let Some(p) = gort::recover() {
                assert!(p.runtime_error().is_some(), "a runtime.Error, as in Go");
                r.set(p.to_string());
            }
        });
        let c: Chan<u64> = Chan::new(cap);
        format!("cap {}", c.cap())
    }
    assert_eq!(make(usize::MAX), "makechan: size out of range");
    assert_eq!(make(1 << 46), "makechan: size out of range"); // 2^49 bytes
    assert_eq!(make(1 << 20), "cap 1048576");
    // Zero-sized values need no buffer: Go accepts any size.
    let z: Chan<()> = Chan::new(usize::MAX);
    assert_eq!(z.cap(), usize::MAX);
    z.send(());
    assert_eq!(z.recv(), Some(()));
}

/// A `recv_timeout` or `send_timeout` that completed leaves no live timer behind: its
/// deadline is garbage at once (`chan/deadline.rs`). A live one would count as pending work,
/// and the deadlock below would go unreported until the timeout fired (as it did when these
/// operations used `time::after`). The timeouts are 20 s, so that a regression fails in 20 s
/// rather than hanging (a watchdog thread would itself hold the deadlock check open).
#[test]
fn a_finished_timeout_leaves_no_timer_to_hide_a_deadlock() {
    let long = Duration::from_secs(20);
    let start = Instant::now();
    support::expect_deadlock(1, move || {
        let c = Chan::new(0);
        let c2 = c.clone();
        gort::go!(move || {
            // Both operations below find nobody at first, so both arm their deadline.
            gort::time::sleep(Duration::from_millis(10));
            c2.send(1);
            gort::time::sleep(Duration::from_millis(10));
            assert_eq!(c2.recv(), Some(2));
        });
        assert_eq!(c.recv_timeout(long), Ok(1));
        assert_eq!(c.send_timeout(2, long), Ok(()));
        Chan::<u8>::new(0).recv(); // nobody sends: a deadlock, reported now
    });
    assert!(
        start.elapsed() < long,
        "the deadlock was reported only when a finished operation's timeout fired"
    );
}

/// A plain thread inside `Handle::enter`, waiting in `recv_timeout` when its runtime shuts
/// down, times out then: no timer of that runtime will ever fire (`Timeout::at_shutdown` in
/// `chan/deadline.rs`, as a `Sleep` ends early). Bounded by the standard channel's wait.
#[test]
fn a_plain_threads_timeout_ends_when_its_runtime_shuts_down() {
    let (armed_tx, armed_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    gort::run(move || {
        let h = gort::Handle::current();
        std::thread::spawn(move || {
            let _in = h.enter();
            let ch: Chan<u8> = Chan::new(0);
            armed_tx.send(()).unwrap();
            let r = ch.recv_timeout(Duration::from_secs(3600));
            done_tx.send(r).unwrap();
        });
        armed_rx.recv().unwrap();
        // Let the thread reach its wait; main's return then shuts the runtime down.
        gort::time::sleep(Duration::from_millis(20));
    });
    let r = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the thread still waits after its runtime shut down");
    assert_eq!(r, Err(gort::RecvTimeoutError::Timeout));
}
