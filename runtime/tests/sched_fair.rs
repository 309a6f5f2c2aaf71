//! Fair scheduling (issue 22): a goroutine pair that hands a value back and forth runs from
//! `runnext` in one inherited time slice, so sysmon asks it to yield when the slice passed
//! 10 ms with others waiting (Go's `preemptone`); a goroutine that computes through checked
//! calls yields at its next call (Go 1.13's stack-guard poison) instead of costing a thread
//! hand-off. Each case is bounded by a watchdog: broken, they hang.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::Chan;

/// The cases measure shares of a processor and timer gaps: one at a time, so that they do not
/// take each other's cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The starvation case: a ping-pong pair, a third goroutine that blocks its thread in
/// `std::thread::sleep` and then readies main (from a thread that lost its P: main goes to the
/// global queue). Go finishes in about the sleep.
fn ping_pong_beside_a_sleeper(procs: usize) {
    let _s = serial();
    let _w = support::watchdog(Duration::from_secs(20), "main starved by a ping-pong");
    let t = Instant::now();
    let trips = gort::Builder::new().procs(procs).run(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let trips = Arc::new(AtomicU64::new(0));
        let (ping, pong): (Chan<u64>, Chan<u64>) = (Chan::new(0), Chan::new(0));
        {
            let (ping, pong) = (ping.clone(), pong.clone());
            gort::go!(move || {
                while let Some(v) = ping.recv() {
                    pong.send(v + 1);
                }
            });
        }
        {
            let (stop, trips) = (stop.clone(), trips.clone());
            gort::go!(move || {
                let mut v = 0;
                while !stop.load(Ordering::Relaxed) {
                    ping.send(v);
                    v = pong.recv().expect("open");
                    trips.fetch_add(1, Ordering::Relaxed);
                }
                ping.close();
            });
        }
        let done: Chan<()> = Chan::new(0);
        let d = done.clone();
        gort::go!(move || {
            std::thread::sleep(Duration::from_secs(1));
            d.send(());
        });
        done.recv();
        stop.store(true, Ordering::Relaxed);
        trips.load(Ordering::Relaxed)
    });
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(trips > 1000, "only {trips} round trips during the sleep");
}

#[test]
fn a_ping_pong_does_not_starve_a_goroutine_readied_by_a_blocked_thread_p1() {
    ping_pong_beside_a_sleeper(1);
}

#[test]
fn a_ping_pong_does_not_starve_a_goroutine_readied_by_a_blocked_thread_p4() {
    ping_pong_beside_a_sleeper(4);
}

/// Go's `TestPingPongHog` (runtime/proc_test.go): two pairs hand a token back and forth, one
/// working 1,000 times longer than the other between hand-offs. Each pair hands off within its
/// time slice; preemption must share the processor between the pairs, so their work counts
/// stay within a factor of 20 (Go's bound; broken, the gap is about 1,000).
fn ping_pong_hog(procs: usize) {
    let _s = serial();
    let _w = support::watchdog(Duration::from_secs(20), "TestPingPongHog");
    let (hog, light) = gort::Builder::new().procs(procs).run(|| {
        let done: Chan<bool> = Chan::new(0);
        let (hog_chan, light_chan): (Chan<bool>, Chan<bool>) = (Chan::new(0), Chan::new(0));
        let (hog, light) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let run = |limit: u64, counter: Arc<AtomicU64>, wake: Chan<bool>| {
            let done = done.clone();
            gort::go!(move || {
                loop {
                    gort::select! {
                        recv(done) -> _ => break,
                        recv(wake) -> _ => {
                            let mut n = counter.load(Ordering::Relaxed);
                            for _ in 0..limit {
                                n = std::hint::black_box(n + 1);
                            }
                            counter.store(n, Ordering::Relaxed);
                            wake.send(true);
                        }
                    }
                }
            });
        };
        for _ in 0..2 {
            run(1_000_000, hog.clone(), hog_chan.clone());
        }
        for _ in 0..2 {
            run(1_000, light.clone(), light_chan.clone());
        }
        hog_chan.send(true);
        light_chan.send(true);
        gort::time::sleep(Duration::from_millis(100));
        done.close();
        // As in Go, the pairs are left to end on their own (the runtime ends with main).
        (hog.load(Ordering::Relaxed), light.load(Ordering::Relaxed))
    });
    assert!(
        hog <= light * 20 && light <= hog * 20,
        "hog {hog}, light {light}: the pairs did not share the processor"
    );
}

#[test]
fn ping_pong_hog_p1() {
    ping_pong_hog(1);
}

#[test]
fn ping_pong_hog_p4() {
    ping_pong_hog(4);
}

/// A checked function (`#[gort::func]`): its prologue compares the stack pointer with the
/// thread's stack guard, which sysmon poisons to ask the goroutine to yield.
#[gort::func]
fn step(x: u64) -> u64 {
    std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1))
}

#[test]
fn a_cpu_loop_through_checked_calls_yields_to_a_ticker_at_p1() {
    let _s = serial();
    let _w = support::watchdog(Duration::from_secs(20), "ticker beside a CPU loop");
    let (ticks, worst, stats) = gort::Builder::new().procs(1).run(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        gort::go!(move || {
            let mut x = 0u64;
            while !s.load(Ordering::Relaxed) {
                x = step(x);
            }
            std::hint::black_box(x);
        });
        let (ticks, worst) = support::ticker_gaps(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (ticks, worst, gort::debug::sched_stats())
    });
    assert!(ticks >= 30, "{ticks} ticks in 500 ms");
    assert!(
        worst < Duration::from_millis(20),
        "a tick came {worst:?} late"
    );
    // The loop yielded at a call: no P was handed to another thread for it.
    assert_eq!(stats.handoffs, 0, "{stats:?}");
    assert!(stats.preemptions >= 20, "{stats:?}");
}
