//! Scheduler behaviour through the public API.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

rt_test! {
    fn many_goroutines_yield_and_complete() {
        let n = support::stress(100_000);
        let wg = gort::WaitGroup::new();
        let yields = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            wg.add(1);
            let (wg, yields) = (wg.clone(), yields.clone());
            gort::go!(move || {
                for _ in 0..3 {
                    gort::yield_now();
                    yields.fetch_add(1, Ordering::Relaxed);
                }
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(yields.load(Ordering::Relaxed), 3 * n);
    }
}

fn tree(depth: u32, wg: gort::WaitGroup, leaves: Arc<AtomicUsize>) {
    if depth == 0 {
        leaves.fetch_add(1, Ordering::Relaxed);
    } else {
        for _ in 0..3 {
            wg.add(1);
            gort::go!(tree(depth - 1, wg.clone(), leaves.clone()));
        }
    }
    wg.done();
}

rt_test! {
    fn nested_go() {
        let wg = gort::WaitGroup::new();
        let leaves = Arc::new(AtomicUsize::new(0));
        wg.add(1);
        gort::go!(tree(7, wg.clone(), leaves.clone()));
        wg.wait();
        assert_eq!(leaves.load(Ordering::Relaxed), 3usize.pow(7));
    }
}

fn record(out: Arc<Mutex<Vec<String>>>, s: String, wg: gort::WaitGroup) {
    out.lock().unwrap().push(s);
    wg.done();
}

rt_test! {
    fn go_evaluates_function_and_arguments_at_the_go_site() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let wg = gort::WaitGroup::new();
        let mut s = String::from("before");
        wg.add(1);
        gort::go!(record(out.clone(), s.clone(), wg.clone()));
        s = String::from("after"); // too late: the argument was already evaluated
        wg.wait();
        assert_eq!(*out.lock().unwrap(), ["before"]);
        drop(s);

        // Method calls: the receiver is evaluated at the go! site.
        struct Greeter(String);
        impl Greeter {
            fn greet(self, out: Arc<Mutex<Vec<String>>>, wg: gort::WaitGroup) {
                out.lock().unwrap().push(self.0);
                wg.done();
            }
        }
        let g = Greeter("receiver".into());
        wg.add(1);
        gort::go!(g.greet(out.clone(), wg.clone()));
        wg.wait();
        assert_eq!(out.lock().unwrap().last().unwrap(), "receiver");

        // A closure value.
        let w = wg.clone();
        let o = out.clone();
        let f = move || record(o, "closure".into(), w);
        wg.add(1);
        gort::go!(f);
        wg.wait();
        assert_eq!(out.lock().unwrap().last().unwrap(), "closure");
    }
}

rt_test! {
    fn goroutine_ids_increase_and_main_is_one() {
        assert_eq!(gort::goid(), 1);
        let a = gort::spawn(gort::goid).join();
        let b = gort::spawn(gort::goid).join();
        assert!(a > 1 && b > a, "ids increase: {a} then {b}");
    }
}

rt_test! {
    fn num_goroutine_counts_live_goroutines() {
        assert_eq!(gort::num_goroutine(), 1);
        let release = gort::WaitGroup::new();
        let started = gort::WaitGroup::new();
        let finished = gort::WaitGroup::new();
        release.add(1);
        for _ in 0..50 {
            started.add(1);
            finished.add(1);
            let (r, s, f) = (release.clone(), started.clone(), finished.clone());
            gort::go!(move || {
                s.done();
                r.wait();
                f.done();
            });
        }
        started.wait();
        assert_eq!(gort::num_goroutine(), 51);
        release.done();
        finished.wait();
        // `done` runs just before each goroutine returns: wait for the last returns.
        while gort::num_goroutine() != 1 {
            gort::yield_now();
        }
    }
}

rt_test! {
    fn join_handles_return_values() {
        let hs: Vec<_> = (0..100u64).map(|i| gort::spawn(move || i * 2)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join()).sum();
        assert_eq!(sum, 9900);
    }
}

rt_test! {
    fn plain_threads_spawn_and_join_through_a_handle() {
        // The goroutine must not block its M in `std::thread::JoinHandle::join` (with one P
        // nothing else could run the threads' goroutines), so the threads report through a
        // WaitGroup, which parks the goroutine.
        let h = gort::Handle::current();
        let all_done = gort::WaitGroup::new();
        let got = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4u64)
            .map(|i| {
                let (h, all_done, got) = (h.clone(), all_done.clone(), got.clone());
                all_done.add(1);
                std::thread::spawn(move || {
                    let _in = h.enter();
                    // A plain thread blocks in the WaitGroup until the goroutines are done.
                    let hits = support::fan_out(100);
                    let v = gort::spawn(move || i + hits).join();
                    got.lock().unwrap().push(v);
                    all_done.done();
                })
            })
            .collect();
        all_done.wait();
        for t in threads {
            t.join().unwrap();
        }
        let mut got = got.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [100, 101, 102, 103]);
    }
}

rt_test! {
    fn goroutine_local_values_follow_the_goroutine() {
        gort::goroutine_local! {
            static ID: std::cell::Cell<u64> = std::cell::Cell::new(0);
        }
        let wg = gort::WaitGroup::new();
        let bad = Arc::new(AtomicUsize::new(0));
        for _ in 0..200 {
            wg.add(1);
            let (wg, bad) = (wg.clone(), bad.clone());
            gort::go!(move || {
                let me = gort::goid();
                ID.with(|v| v.set(me));
                for _ in 0..5 {
                    gort::yield_now();
                    if ID.with(|v| v.get()) != me {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(bad.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn main_return_does_not_wait_for_other_goroutines() {
    let ran_after_block = Arc::new(AtomicBool::new(false));
    let r = ran_after_block.clone();
    let t = Instant::now();
    let v = gort::Builder::new().procs(2).run(move || {
        let never = gort::WaitGroup::new();
        never.add(1);
        gort::go!(move || {
            never.wait(); // nobody calls done
            r.store(true, Ordering::SeqCst);
        });
        gort::go!(move || loop {
            gort::yield_now(); // busy forever, but yields
        });
        42
    });
    assert_eq!(v, 42);
    assert!(!ran_after_block.load(Ordering::SeqCst));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn discarded_goroutines_run_no_user_code() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    gort::Builder::new().procs(2).run(move || {
        let never = gort::WaitGroup::new();
        never.add(1);
        let started = gort::WaitGroup::new();
        started.add(1);
        let s = started.clone();
        gort::go!(move || {
            let _flag = Flag(d); // on the goroutine's stack when main returns
            s.done();
            never.wait();
        });
        started.wait();
    });
    assert!(
        !dropped.load(Ordering::SeqCst),
        "a discarded goroutine's values are not dropped"
    );
}

#[test]
fn runtimes_run_in_sequence_and_side_by_side() {
    for i in 0..3u64 {
        assert_eq!(
            gort::Builder::new()
                .procs(2)
                .run(move || gort::spawn(move || i).join()),
            i
        );
    }
    let ts: Vec<_> = (0..2u64)
        .map(|i| {
            std::thread::spawn(move || {
                gort::Builder::new()
                    .procs(2)
                    .run(move || (i, support::fan_out(10_000)))
            })
        })
        .collect();
    for t in ts {
        let (_, n) = t.join().unwrap();
        assert_eq!(n, 10_000);
    }
}

#[test]
fn a_panicking_goroutine_is_reraised_by_run() {
    let r = std::panic::catch_unwind(|| {
        gort::Builder::new().procs(2).run(|| {
            gort::go!(move || panic!("boom in a goroutine"));
            let never = gort::WaitGroup::new();
            never.add(1);
            never.wait();
        })
    });
    let p = r.expect_err("run re-raises the panic");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"boom in a goroutine"));
}

#[test]
fn a_plain_thread_joining_an_abandoned_goroutine_does_not_hang() {
    let (tx, rx) = std::sync::mpsc::channel();
    gort::Builder::new().procs(1).run(move || {
        let never = gort::WaitGroup::new();
        never.add(1);
        let h = gort::spawn(move || never.wait());
        tx.send(h).unwrap();
    });
    let h = rx.recv().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || h.join()));
    let msg = r.expect_err("join panics").downcast::<String>().unwrap();
    assert!(msg.contains("ended without a result"), "{msg}");
}

#[test]
fn runtime_calls_outside_a_runtime_panic_clearly() {
    fn msg(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let p = std::panic::catch_unwind(f).expect_err("panics outside a runtime");
        match p.downcast::<String>() {
            Ok(s) => *s,
            Err(p) => p.downcast_ref::<&str>().unwrap_or(&"").to_string(),
        }
    }
    assert!(msg(|| gort::go!(move || {})).contains("outside a gort runtime"));
    assert!(msg(gort::yield_now).contains("must be called from a goroutine"));
    assert!(msg(|| {
        gort::goid();
    })
    .contains("must be called from a goroutine"));
    assert!(msg(|| {
        gort::num_goroutine();
    })
    .contains("outside a gort runtime"));
    assert!(msg(|| {
        gort::spawn(|| 1);
    })
    .contains("outside a gort runtime"));
}

#[test]
fn builder_procs_is_honoured() {
    for n in [1, 2, 3, 8] {
        assert_eq!(gort::Builder::new().procs(n).run(gort::gomaxprocs), n);
    }
}

#[test]
fn gomaxprocs_env_child() {
    if !support::is_child() {
        return;
    }
    println!("procs={}", gort::run(gort::gomaxprocs));
    println!(
        "builder={}",
        gort::Builder::new().procs(2).run(gort::gomaxprocs)
    );
}

#[test]
fn gomaxprocs_environment_variable_is_honoured() {
    let out = support::run_child("gomaxprocs_env_child", &[("GOMAXPROCS", "3")]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("procs=3"), "{s}");
    assert!(
        s.contains("builder=2"),
        "Builder::procs overrides the environment: {s}"
    );
    let out = support::run_child("gomaxprocs_env_child", &[("GOMAXPROCS", "junk")]);
    let s = String::from_utf8_lossy(&out.stdout);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(
        s.contains(&format!("procs={cpus}")),
        "invalid values are ignored: {s}"
    );
}

#[test]
fn goroutines_migrate_between_threads() {
    // Main parks; its M then runs a goroutine that computes for a while without yielding; a
    // plain thread readies main through the global queue, so the other (idle) M resumes it.
    // Migration is real, which is why go! documents it.
    let moved = gort::Builder::new().procs(2).run(|| {
        for _ in 0..50 {
            let before = std::thread::current().id();
            let wg = gort::WaitGroup::new();
            wg.add(1);
            gort::go!(move || {
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(20) {
                    std::hint::spin_loop();
                }
            });
            let w = wg.clone();
            let waker = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                w.done();
            });
            wg.wait();
            let after = std::thread::current().id();
            let w = gort::WaitGroup::new();
            w.add(1);
            let w2 = w.clone();
            // Join the waker without blocking this M.
            std::thread::spawn(move || {
                waker.join().unwrap();
                w2.done();
            });
            w.wait();
            if after != before {
                return true;
            }
        }
        false
    });
    assert!(moved, "a parked goroutine resumed on another thread");
}

/// A goroutine that calls `gort::run` is counted once among the runtimes' threads, so a plain
/// thread that will still send is seen, and no deadlock is reported (it used to be reported at
/// once: the nested caller was counted twice, hiding the plain thread). Both runtimes are
/// what `#[gort::test]` makes (`__private::test`), so that the harness's main thread is the
/// only thread the count tolerates, as in a program's `main`.
#[test]
fn nested_run_with_a_plain_sender_is_no_deadlock() {
    // In a child process: other tests' threads would hide the miscount.
    if !support::is_child() {
        let out = support::run_child("nested_run_with_a_plain_sender_is_no_deadlock", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let v = gort::__private::test(Some(1), None, || {
        gort::__private::test(Some(1), None, || {
            let ch: gort::Chan<u32> = gort::Chan::new(0);
            let c = ch.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                c.send(42);
            });
            ch.recv()
        })
    });
    assert_eq!(v, Some(42));
}

/// Two runtimes that talk through a channel: a goroutine of one waits for a goroutine of the
/// other, which is busy for a while first. Neither may call that a deadlock: every thread of
/// the process belongs to a runtime (the harness's main thread is tolerated), so only rule 5
/// of `check_dead` (other runtimes must be quiescent) keeps the waiting one from reporting.
#[test]
fn two_runtimes_talking_through_a_channel_are_no_deadlock() {
    if !support::is_child() {
        let out = support::run_child(
            "two_runtimes_talking_through_a_channel_are_no_deadlock",
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let ch: gort::Chan<u32> = gort::Chan::new(0);
    let c = ch.clone();
    let other = std::thread::spawn(move || {
        gort::Builder::new().procs(1).run(move || {
            // Busy (and then sleeping on a timer) before sending.
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_millis(100) {
                gort::yield_now();
            }
            gort::time::sleep(std::time::Duration::from_millis(100));
            c.send(7);
        })
    });
    let v = gort::__private::test(Some(1), None, move || ch.recv());
    other.join().unwrap();
    assert_eq!(v, Some(7));
}

/// `#[gort::test]` takes `stack_size` beside `procs` (as `#[gort::main]` does): a goroutine
/// of a test with 4 MiB windows recurses past what the default 256 KiB would allow.
#[gort::test(procs = 2, stack_size = 4 << 20)]
fn test_attribute_sets_procs_and_stack_size() {
    #[inline(never)]
    fn deep(n: u32) -> u64 {
        let pad = std::hint::black_box([n as u64; 128]); // 1 KiB a frame
        if n == 0 {
            return pad[1];
        }
        deep(n - 1).wrapping_add(pad[2])
    }
    assert_eq!(gort::gomaxprocs(), 2);
    // About 1.5 MiB of frames: far past a 256 KiB window, inside a 4 MiB one.
    assert!(gort::spawn(|| deep(1500)).join() > 0);
}
