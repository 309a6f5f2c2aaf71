//! sysmon and the blocking hand-off: a goroutine that blocks its thread (marked with
//! `gort::blocking` or not) or computes for a long time does not stall the others; `run`
//! returns while one is still blocked; threads are bounded and reused; deadlock detection
//! still works; the goroutine dump on SIGQUIT and schedtrace. Bounded in time and count.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::Chan;

/// Round trips two goroutines complete over a channel pair in `window`.
fn ping_pong_for(window: Duration) -> u64 {
    let (ping, pong): (Chan<u64>, Chan<u64>) = (Chan::new(0), Chan::new(0));
    let (p2, q2) = (ping.clone(), pong.clone());
    gort::go!(move || {
        while let Some(v) = p2.recv() {
            q2.send(v + 1);
        }
    });
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < window {
        ping.send(n);
        n = pong.recv().expect("open");
    }
    ping.close();
    n
}

/// Starts a goroutine that runs `f` after saying so; returns once it has started (at P=1 the
/// caller can continue only once the P was handed to another thread, if `f` blocks).
fn start_and_wait(f: impl FnOnce() + Send + 'static) -> Arc<AtomicBool> {
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    gort::go!(move || {
        s.store(true, Ordering::SeqCst);
        f();
    });
    while !started.load(Ordering::SeqCst) {
        gort::yield_now();
    }
    started
}

#[test]
fn an_unmarked_blocking_call_does_not_stall_the_others_at_p1() {
    let t = Instant::now();
    let trips = gort::Builder::new().procs(1).run(|| {
        // Blocks its thread for a second, with no annotation.
        start_and_wait(|| std::thread::sleep(Duration::from_secs(1)));
        ping_pong_for(Duration::from_millis(300))
    });
    // `run` returned while the sleeper still sleeps (it is left to finish on its own).
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(
        trips > 1000,
        "only {trips} round trips while one goroutine slept"
    );
}

#[test]
fn a_blocking_call_after_a_quiet_spell_is_caught_too() {
    // The runtime idles long enough for sysmon to slow down and sleep until woken; then a
    // goroutine blocks its thread. The P still goes to another thread, within milliseconds.
    let trips = gort::Builder::new().procs(1).run(|| {
        gort::time::sleep(Duration::from_millis(200));
        start_and_wait(|| std::thread::sleep(Duration::from_millis(700)));
        let t = Instant::now();
        let n = ping_pong_for(Duration::from_millis(300));
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        n
    });
    assert!(trips > 1000, "only {trips} round trips");
}

#[test]
fn a_marked_blocking_call_hands_its_processor_off() {
    let trips = gort::Builder::new().procs(1).run(|| {
        start_and_wait(|| gort::blocking(|| std::thread::sleep(Duration::from_millis(700))));
        let n = ping_pong_for(Duration::from_millis(300));
        let s = gort::debug::sched_stats();
        assert!(s.handoffs >= 1, "{s:?}");
        n
    });
    assert!(trips > 1000, "only {trips} round trips");
}

#[test]
fn a_cpu_loop_does_not_stop_a_ticker_at_p1() {
    let (ticks, worst) = gort::Builder::new().procs(1).run(|| {
        // Computes for a second without a single gort call.
        start_and_wait(|| {
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_secs(1) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
        support::ticker_gaps(Duration::from_millis(500))
    });
    // 50 ticks in 500 ms; sysmon retakes a P whose goroutine computes after 10 ms, so the
    // first tick may come that late and the rest on time.
    assert!(ticks >= 30, "{ticks} ticks in 500 ms");
    assert!(
        worst < Duration::from_millis(100),
        "a tick came {worst:?} late"
    );
}

#[test]
fn many_blocking_sections_run_in_parallel_and_threads_are_reused() {
    gort::Builder::new().procs(2).run(|| {
        let batch = || {
            let t = Instant::now();
            let wg = gort::WaitGroup::new();
            for _ in 0..100 {
                wg.add(1);
                let w = wg.clone();
                gort::go!(move || {
                    gort::blocking(|| std::thread::sleep(Duration::from_millis(100)));
                    w.done();
                });
            }
            wg.wait();
            t.elapsed()
        };
        let first = batch();
        assert!(
            first < Duration::from_millis(1500),
            "100 blocking sections of 100 ms took {first:?} at P=2"
        );
        let after_first = gort::debug::sched_stats();
        // Give the extra threads time to go idle, then run a second batch: it reuses them.
        // (Polled, bounded: under a loaded machine the threads take a while to get there.)
        let t = Instant::now();
        let mut idle = 0;
        while t.elapsed() < Duration::from_secs(2) {
            gort::time::sleep(Duration::from_millis(10));
            idle = gort::debug::sched_stats().idle_threads;
            // All but the Ms holding the Ps (and this goroutine's own) have gone idle.
            if idle + 4 >= after_first.threads {
                break;
            }
        }
        assert!(idle > 10, "extra threads went idle: {idle}");
        let second = batch();
        let after_second = gort::debug::sched_stats();
        assert!(second < Duration::from_millis(1500), "{second:?}");
        // The second batch may overlap more of its sections than the first did (up to all
        // 100 at once), so it may need more threads than the first batch made; but not new
        // ones on top of the idle ones: at most 100 blocked Ms, the 2 running the Ps, and a
        // few waking. Without reuse it would be ~185.
        assert!(
            after_second.threads <= after_first.threads.max(100 + 2) + 8,
            "threads were not reused: {} then {}",
            after_first.threads,
            after_second.threads
        );
    });
}

#[test]
fn no_deadlock_is_reported_while_a_goroutine_blocks() {
    if !support::is_child() {
        let out = support::run_child("no_deadlock_is_reported_while_a_goroutine_blocks", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // What `#[gort::test]` expands to: deadlock detection is exact here (the harness's main
    // thread is known to only wait).
    for marked in [false, true] {
        let v = gort::__private::test(Some(1), None, move || {
            let ch: Chan<u8> = Chan::new(0);
            let c = ch.clone();
            gort::go!(move || {
                support::nap(Duration::from_millis(300), marked);
                c.send(7);
            });
            ch.recv() // every other goroutine waits on a channel meanwhile
        });
        assert_eq!(v, Some(7));
    }
}

#[test]
fn thread_exhaustion_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(1).max_threads(3).run(|| {
        let wg = gort::WaitGroup::new();
        for _ in 0..6 {
            wg.add(1);
            let w = wg.clone();
            gort::go!(move || {
                gort::blocking(|| std::thread::sleep(Duration::from_millis(500)));
                w.done();
            });
        }
        wg.wait();
    });
}

#[test]
fn too_many_blocked_threads_end_with_thread_exhaustion() {
    let err = support::fatal_child("thread_exhaustion_child");
    assert!(
        err.contains("runtime: program exceeds 3-thread limit\nfatal error: thread exhaustion"),
        "{err}"
    );
}

#[test]
fn sigquit_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(2).run(|| {
        let ch: Chan<u8> = Chan::new(0);
        for _ in 0..3 {
            let c = ch.clone();
            gort::go!(move || {
                c.recv();
            });
        }
        // The signal comes once main has parked (the dump is asynchronous).
        gort::go!(move || {
            gort::time::sleep(Duration::from_millis(100));
            // SAFETY: raising a signal at ourselves.
            unsafe { libc::raise(libc::SIGQUIT) };
        });
        let never = gort::WaitGroup::new();
        never.add(1);
        never.wait();
    });
}

#[test]
fn sigquit_prints_every_goroutine_and_exits_2() {
    let err = support::fatal_child("sigquit_child");
    assert!(err.starts_with("SIGQUIT: quit\n"), "{err}");
    assert!(
        err.contains("goroutine 1 [semacquire]:\n\truntime/tests/sched_sysmon.rs:"),
        "{err}"
    );
    assert_eq!(
        err.matches("[chan receive]:\n\truntime/tests/sched_sysmon.rs:")
            .count(),
        3,
        "{err}"
    );
    // The three receivers, and the goroutine that raised the signal unless it ended first.
    assert!(
        err.matches("created by goroutine 1\n").count() >= 3,
        "{err}"
    );
}

#[test]
fn schedtrace_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(2).run(|| {
        let busy = Arc::new(AtomicU64::new(0));
        let b = busy.clone();
        gort::go!(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(250) {
                b.fetch_add(1, Ordering::Relaxed);
                gort::yield_now();
            }
        });
        gort::time::sleep(Duration::from_millis(300));
    });
}

#[test]
fn godebug_schedtrace_prints_gos_line() {
    let out = support::run_child(
        "schedtrace_child",
        &[("GODEBUG", "schedtrace=50,scheddetail=1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("SCHED ")).collect();
    assert!(lines.len() >= 3, "{err}");
    for l in &lines {
        // SCHED 1004ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0 idlethreads=2
        // runqueue=0 [0 0]
        let rest = l.strip_prefix("SCHED ").unwrap();
        let (ms, rest) = rest.split_once("ms: ").unwrap_or_else(|| panic!("{l}"));
        assert!(ms.parse::<u64>().is_ok(), "{l}");
        let keys: Vec<&str> = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .collect();
        assert_eq!(
            keys,
            [
                "gomaxprocs",
                "idleprocs",
                "threads",
                "spinningthreads",
                "idlethreads",
                "runqueue"
            ],
            "{l}"
        );
        assert!(rest.contains("gomaxprocs=2 "), "{l}");
        assert!(rest.ends_with(']') && rest.contains(" ["), "{l}");
    }
    assert!(err.contains("  P0: runqsize="), "scheddetail: {err}");
    assert!(err.contains("  M0: p="), "scheddetail: {err}");
    assert!(err.contains("  G1: status="), "scheddetail: {err}");
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
fn unmarked_blocking_calls_do_not_leak_descriptors_child() {
    if !support::is_child() {
        return;
    }
    // As under `ulimit -n 256` (issue 22: sysmon kept a `/proc/self/task/<tid>/stat` file open
    // for every thread it ever looked at, so 400 unmarked blocking calls used up the limit).
    let lim = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: a valid rlimit for the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let before = open_fds();
    let (threads, during, opened) = gort::Builder::new().procs(1).run(|| {
        let wg = gort::WaitGroup::new();
        for _ in 0..400 {
            wg.add(1);
            let w = wg.clone();
            gort::go!(move || {
                std::thread::sleep(Duration::from_millis(300)); // unmarked: sysmon finds it
                w.done();
            });
        }
        wg.wait();
        // While the runtime (and sysmon) still run.
        let opened = std::fs::File::open("/proc/self/status").map(drop);
        (gort::debug::sched_stats().threads, open_fds(), opened)
    });
    println!("threads={threads} fds before={before} during={during}");
    assert!(
        threads > 100,
        "{threads} threads: the calls did not block threads"
    );
    assert!(
        during < before + 16,
        "descriptors: {before} before, {during} after the calls"
    );
    opened.expect("a file can still be opened");
}

#[test]
fn unmarked_blocking_calls_do_not_leak_descriptors() {
    let out = support::run_child("unmarked_blocking_calls_do_not_leak_descriptors_child", &[]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("threads="), "{text}");
}

/// The worst gap between ticks of a 10 ms ticker while 3,000 goroutines block their threads
/// at once (`marked`: inside `gort::blocking`).
fn ticker_gap_during_a_flood(procs: usize, marked: bool) -> Duration {
    gort::Builder::new().procs(procs).run(move || {
        let wg = gort::WaitGroup::new();
        for _ in 0..3000 {
            wg.add(1);
            let w = wg.clone();
            gort::go!(move || {
                support::nap(Duration::from_millis(200), marked);
                w.done();
            });
        }
        let (_, worst) = support::ticker_gaps(Duration::from_millis(500));
        wg.wait();
        worst
    })
}

#[test]
fn timers_keep_firing_while_a_flood_of_blocking_calls_starts_threads() {
    // Issue 22: 3,000 blocking calls at once stalled a 10 ms ticker for 203 ms (marked) and
    // 568 ms (unmarked; sysmon fired the timer, and its goroutine went to the back of the
    // global queue behind the flood). Go: 10.8 ms. Measured here: about 11 ms unmarked, 11 to
    // 23 ms marked; the bound only tells a stall from a thread-creation hiccup.
    for (procs, marked) in [(1, false), (1, true), (2, false)] {
        let worst = ticker_gap_during_a_flood(procs, marked);
        assert!(
            worst < Duration::from_millis(100),
            "P={procs} marked={marked}: a tick came {worst:?} after the last"
        );
    }
}
