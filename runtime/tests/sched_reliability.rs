//! Reliability: shutdown racing wake-ups from plain threads, channels whose goroutines were
//! discarded, timer garbage, resource limits, and failures on runtime threads. Hangs and
//! crashes run in child processes with time limits.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::Chan;

/// `VmSize` of this process in KiB.
fn vm_size_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A plain thread wakes parked goroutines while `run` returns and discards them. A wake-up
/// that overwrote a discarded goroutine's status made both sides discard it: in release a
/// 16 GiB stack segment was never unmapped (VmSize grew by that much per leak), in debug
/// `run` panicked with "goroutine stacks not returned at shutdown".
#[test]
fn shutdown_racing_plain_thread_wakeups_leaks_nothing() {
    if support::alone("shutdown_racing_plain_thread_wakeups_leaks_nothing") {
        return; // measures the whole process: alone in a child
    }
    let before = vm_size_kib();
    const PARKED: usize = 256;
    for _ in 0..support::stress(40) {
        let chans: Vec<Chan<u64>> = (0..PARKED).map(|_| Chan::new(0)).collect();
        let go = Arc::new(AtomicBool::new(false));
        let (cs, g) = (chans.clone(), go.clone());
        // Starts sending the moment main is about to return: its wake-ups land while
        // shutdown discards the same goroutines.
        let sender = std::thread::spawn(move || {
            while !g.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                for c in &cs {
                    let _ = c.try_send(1);
                }
            }
        });
        gort::Builder::new().procs(2).run(move || {
            let wg = gort::WaitGroup::new();
            for c in chans {
                wg.add(1);
                let w = wg.clone();
                gort::go!(move || {
                    w.done();
                    while c.recv().is_some() {}
                });
            }
            wg.wait();
            gort::yield_now();
            go.store(true, Ordering::Release);
        });
        sender.join().unwrap();
    }
    let grown = vm_size_kib().saturating_sub(before);
    // Sanitizer builds keep discarded goroutines' stacks mapped on purpose (leak checking).
    if !cfg!(feature = "sanitizer") {
        assert!(
            grown < 4 << 20,
            "VmSize grew by {grown} KiB: stack segments leaked"
        );
    }
}

/// After `run` returns, a goroutine it discarded while blocked in `recv` is gone: a send from
/// a plain thread must not hand it the value (and report success).
#[test]
fn a_discarded_receiver_takes_no_value() {
    let ch: Chan<String> = Chan::new(0);
    let c = ch.clone();
    gort::Builder::new().procs(1).run(move || {
        let c2 = c.clone();
        gort::go!(move || {
            c2.recv();
        });
        gort::yield_now(); // it parks in recv
    });
    match ch.try_send("lost?".to_string()) {
        Err(gort::chan::TrySendError::Full(v)) => assert_eq!(v, "lost?"),
        other => panic!("a discarded receiver took the value: {other:?}"),
    }
    // The same through a select of a discarded goroutine, and for a discarded sender.
    let (a, b): (Chan<u8>, Chan<u8>) = (Chan::new(0), Chan::new(0));
    let (a2, b2) = (a.clone(), b.clone());
    gort::Builder::new().procs(1).run(move || {
        gort::go!(move || gort::select! {
            recv(a2) -> _ => {}
            send(b2, 9) => {}
        });
        gort::yield_now();
    });
    assert!(a.try_send(1).is_err(), "no live receiver on a");
    assert_eq!(
        b.try_recv(),
        Err(gort::chan::TryRecvError::Empty),
        "no live sender on b"
    );
}

/// Waits for `child` (a test of this binary) up to `limit`; kills it if it does not finish.
fn child_within(name: &str, env: &[(&str, &str)], limit: Duration) -> (String, Option<i32>) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("GORT_CHILD", "1")
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    match status {
        Some(s) => (err, s.code()),
        None => (
            format!("{err}\n(killed: still running after {limit:?})"),
            None,
        ),
    }
}

#[test]
fn stopped_timer_deadlock_child() {
    if !support::is_child() {
        return;
    }
    support::expect_deadlock(1, || {
        let t = gort::time::Timer::new(Duration::from_secs(3600));
        t.stop();
        let tk = gort::time::Ticker::new(Duration::from_secs(3600));
        tk.stop();
        let never: Chan<u8> = Chan::new(0);
        never.recv();
    });
}

/// A stopped timer or ticker can wake nobody: it must not keep a real deadlock from being
/// reported (it used to count as pending, and the program hung).
#[test]
fn a_stopped_timer_does_not_hide_a_deadlock() {
    let (err, code) = child_within("stopped_timer_deadlock_child", &[], Duration::from_secs(30));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("all goroutines are asleep"), "{err}");
}

/// Waits in its `Drop` for a value that never comes.
struct WaitsForeverOnDrop(Chan<u8>);

impl Drop for WaitsForeverOnDrop {
    fn drop(&mut self) {
        self.0.recv();
    }
}

#[test]
fn blocked_unwind_deadlock_child() {
    if !support::is_child() {
        return;
    }
    support::expect_deadlock(2, || {
        let never: Chan<u8> = Chan::new(0);
        let keep = never.clone();
        gort::go!(move || {
            let _guard = WaitsForeverOnDrop(keep);
            panic!("unwinding into a wait that never ends");
        });
        let done: Chan<u8> = Chan::new(0);
        done.recv(); // nobody sends, and the goroutine above can never run again
        drop(never);
    });
}

/// Go: `go func() { defer func() { <-never }(); panic(..) }(); <-done` reports that all
/// goroutines are asleep. In gort the stuck goroutine waits on its thread, because it is
/// unwinding (`sched::may_park`). Deadlock detection must not take that wait for a thread
/// in a system call (it did, and the program hung).
#[test]
fn a_goroutine_stuck_while_unwinding_is_part_of_a_deadlock() {
    let (err, code) = child_within(
        "blocked_unwind_deadlock_child",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("all goroutines are asleep"), "{err}");
}

/// Waits in its `Drop` for one value.
struct WaitsOnDrop(Chan<u8>);

impl Drop for WaitsOnDrop {
    fn drop(&mut self) {
        self.0.recv(); // the wait the dump shows
    }
}

#[gort::func]
fn unwinds_into_a_wait(ch: Chan<u8>) {
    defer!(|| {
        gort::recover();
    });
    let _guard = WaitsOnDrop(ch);
    panic!("unwinding into a wait");
}

/// A goroutine that blocks while it unwinds waits on its own thread (`sched::may_park`), with
/// its status still running; dumps show what it waits for and where, as Go's would.
#[gort::test(procs = 2)]
fn a_goroutine_waiting_while_it_unwinds_shows_its_wait_in_dumps() {
    let ch: Chan<u8> = Chan::new(0);
    let keep = ch.clone();
    let done: Chan<()> = Chan::new(0);
    let d = done.clone();
    gort::go!(move || {
        defer!(d.close());
        unwinds_into_a_wait(keep);
    });
    let t = std::time::Instant::now();
    let block = loop {
        let mut v = Vec::new();
        gort::debug::write_goroutines(&mut v).unwrap();
        let dump = String::from_utf8(v).unwrap();
        let lines: Vec<&str> = dump.lines().collect();
        let found = lines
            .windows(2)
            .find(|w| w[0].ends_with("[chan receive]:") && w[1].contains("sched_reliability.rs"))
            .map(|w| w.join("\n"));
        if let Some(b) = found {
            break b;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no such goroutine in:\n{dump}"
        );
        gort::time::sleep(Duration::from_millis(1));
    };
    eprintln!("{block}");
    ch.send(1);
    assert_eq!(done.recv(), None);
}

/// `VmRSS` of this process in KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Go removes stopped and reset timers from its heaps; gort must too. 1M new+stop grew memory
/// by 266 MiB and 2M resets by 45 MiB before (Go: +10 and +0 MiB).
#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan's quarantine keeps freed memory resident"
)]
fn stop_and_reset_do_not_grow_memory() {
    if support::alone("stop_and_reset_do_not_grow_memory") {
        return; // measures the whole process: alone in a child
    }
    let grown = gort::Builder::new().procs(1).run(|| {
        let hour = Duration::from_secs(3600);
        let before = rss_kib();
        for _ in 0..support::stress(300_000) {
            gort::time::Timer::new(hour).stop();
        }
        let t = gort::time::Timer::new(hour);
        for _ in 0..support::stress(300_000) {
            t.reset(hour);
        }
        rss_kib().saturating_sub(before)
    });
    assert!(grown < 16 << 10, "RSS grew by {grown} KiB");
}

#[test]
fn drop_panic_child() {
    if !support::is_child() {
        return;
    }
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("from drop");
        }
    }
    gort::Builder::new().procs(1).run(|| {
        let _b = Bomb;
        panic!("first");
    });
}

/// A panic in `Drop` while a goroutine unwinds makes std abort; gort used to print only std's
/// "thread caused non-unwinding panic. aborting.", swallowing both panics.
#[test]
fn a_panic_in_drop_during_unwinding_names_both_panics() {
    let (err, code) = child_within("drop_panic_child", &[], Duration::from_secs(30));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "panic: first\n\tpanic: from drop [in a destructor while unwinding]\nfatal error: \
             panic in a destructor during cleanup\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("\tfirst panicked at runtime/tests/sched_reliability.rs:"),
        "{err}"
    );
    assert!(
        err.contains("\tpanicked at runtime/tests/sched_reliability.rs:"),
        "{err}"
    );
}

/// Sets this process's address-space limit (`ulimit -v`), in bytes.
fn limit_address_space(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit with a valid struct; lowering a limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
}

#[test]
fn address_limit_child() {
    if !support::is_child() {
        return;
    }
    limit_address_space(3 << 30);
    let n = gort::Builder::new().procs(2).run(|| {
        let wg = gort::WaitGroup::new();
        let gate = gort::WaitGroup::new();
        gate.add(1);
        for _ in 0..2000 {
            wg.add(1);
            let (w, g) = (wg.clone(), gate.clone());
            gort::go!(move || {
                w.done();
                g.wait();
            });
        }
        wg.wait();
        let n = gort::num_goroutine();
        gate.done();
        n
    });
    assert_eq!(n, 2001);
    eprintln!("ran under the limit");
}

/// Under an address-space limit below 16 GiB (containers and batch systems set such limits;
/// Go runs under 4 GB), the first stack segment's reservation failed, the M died holding its
/// P, and every gort program hung at start without a word.
#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan reserves terabytes of shadow memory: no address-space limit fits"
)]
fn runs_under_an_address_space_limit() {
    let (err, code) = child_within("address_limit_child", &[], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("ran under the limit"), "{err}");
}

#[test]
fn unmappable_stack_child() {
    if !support::is_child() {
        return;
    }
    limit_address_space(1 << 30);
    gort::Builder::new().procs(1).run(|| {
        gort::GoBuilder::new()
            .stack_size(1 << 30)
            .spawn(|| ())
            .join();
    });
}

/// A stack that cannot be mapped at all is a fatal error with a report, never a hang.
#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan reserves terabytes of shadow memory: no address-space limit fits"
)]
fn a_stack_that_cannot_be_mapped_is_a_fatal_error_not_a_hang() {
    let (err, code) = child_within("unmappable_stack_child", &[], Duration::from_secs(60));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("fatal error: cannot map a 1073741824-byte goroutine stack"),
        "{err}"
    );
}

#[test]
fn stack_sizes_are_checked_where_they_are_given() {
    for f in [
        || {
            gort::Builder::new().stack_size(usize::MAX);
        },
        || {
            gort::Builder::new().stack_size(64 << 40);
        },
        || {
            gort::GoBuilder::new().stack_size((1 << 30) + 1);
        },
    ] {
        let e = std::panic::catch_unwind(f).expect_err("refused");
        let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("exceeds the largest goroutine stack"), "{msg}");
    }
}

/// A program asking for many distinct stack sizes used to fill the segment registry (one
/// class, and 16 GiB of address space, per size) at the 1024th and then hang.
#[test]
fn many_distinct_stack_sizes_share_a_few_classes() {
    let sum = gort::Builder::new().procs(2).run(|| {
        let hs: Vec<_> = (1..=1100usize)
            .map(|i| {
                gort::GoBuilder::new()
                    .stack_size(16 * 1024 + i * 4096)
                    .spawn(move || i)
            })
            .collect();
        hs.into_iter().map(|h| h.join()).sum::<usize>()
    });
    assert_eq!(sum, 1100 * 1101 / 2);
}

/// A goroutine still running when `run` returns (blocked in an unmarked call) is left to its
/// thread; its stack goes back to the pool when it ends, and the pool's segments are unmapped
/// then, even when something keeps the runtime alive for good (a record whose receive a plain
/// thread filled at the shutdown is leaked on purpose: a waker may still point into it).
#[test]
fn a_goroutine_left_running_at_shutdown_gives_its_segments_back_when_it_ends() {
    if support::alone("a_goroutine_left_running_at_shutdown_gives_its_segments_back_when_it_ends") {
        return; // measures the whole process: alone in a child
    }
    let before = vm_size_kib();
    for _ in 0..support::stress(6) {
        let c: Chan<u64> = Chan::new(0);
        let (c2, go) = (c.clone(), Arc::new(AtomicBool::new(false)));
        let g = go.clone();
        let sender = std::thread::spawn(move || {
            while !g.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                let _ = c2.try_send(1);
            }
        });
        gort::Builder::new().procs(2).run(move || {
            gort::go!(move || while c.recv().is_some() {});
            let started = Arc::new(AtomicBool::new(false));
            let s = started.clone();
            gort::go!(move || {
                s.store(true, Ordering::Release);
                std::thread::sleep(Duration::from_millis(150)); // outlives the shutdown
            });
            while !started.load(Ordering::Acquire) {
                gort::yield_now();
            }
            go.store(true, Ordering::Release);
        });
        sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(250)); // the sleeper ends on its own thread
    }
    let grown = vm_size_kib().saturating_sub(before);
    if !cfg!(feature = "sanitizer") {
        assert!(
            grown < 4 << 20,
            "VmSize grew by {grown} KiB: stack segments leaked"
        );
    }
}
