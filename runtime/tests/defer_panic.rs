//! defer, panic, recover and Goexit through the public API (the Go programs of
//! `conformance/` cover Go's documented cases; these cover gort's own rules and edges).

#[macro_use]
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gort::{goexit, recover, Named, Panic};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

/// Nine `defer!`s: more than Go's 8 open-coded slots, so the frame uses the defer list.
#[gort::func]
fn nine(l: &Log) {
    defer!(push(l, "1"));
    defer!(push(l, "2"));
    defer!(push(l, "3"));
    defer!(push(l, "4"));
    defer!(push(l, "5"));
    defer!(push(l, "6"));
    defer!(push(l, "7"));
    defer!(push(l, "8"));
    defer!(push(l, "9"));
    push(l, "body");
}

#[gort::func]
fn eight(l: &Log) {
    defer!(push(l, "1"));
    defer!(push(l, "2"));
    defer!(push(l, "3"));
    defer!(push(l, "4"));
    defer!(push(l, "5"));
    defer!(push(l, "6"));
    defer!(push(l, "7"));
    defer!(push(l, "8"));
    push(l, "body");
}

rt_test! {
    fn open_coded_and_list_frames_run_lifo() {
        for f in [eight as fn(&Log), nine] {
            let l = log();
            f(&l);
            let got = l.borrow().clone();
            let n = got.len() - 1;
            let mut want = vec!["body".to_string()];
            want.extend((1..=n).rev().map(|i| i.to_string()));
            assert_eq!(got, want);
        }
    }
}

#[gort::func]
fn loop_and_nested(l: Log) -> usize {
    for i in 0..3 {
        let a = l.clone();
        defer!(move || push(&a, format!("loop {i}")));
    }
    {
        let a = l.clone();
        defer!(move || push(&a, "block"));
    }
    // A big closure (more than the record's inline bytes) is boxed.
    let big = [7u64; 16];
    let a = l.clone();
    defer!(move || push(&a, format!("big {}", big.iter().sum::<u64>())));
    l.borrow().len()
}

rt_test! {
    fn loops_blocks_and_big_closures_use_the_list() {
        let l = log();
        assert_eq!(loop_and_nested(l.clone()), 0);
        assert_eq!(
            *l.borrow(),
            ["big 112", "block", "loop 2", "loop 1", "loop 0"]
        );
    }
}

#[gort::func]
fn handle_panic(l: Log) {
    // Called as `defer!(handle_panic(..))`: this frame is the deferred function itself, so
    // recover works here, as in Go.
    if let Some(p) = recover() {
        push(&l, format!("handled {p}"));
    }
}

#[gort::func]
fn uses_handler(l: Log) {
    defer!(handle_panic(l.clone()));
    panic!("bad input");
}

#[gort::func]
fn closure_calls_handler(l: Log) {
    let a = l.clone();
    // Here the deferred function is the closure: a #[gort::func] it calls is one level
    // deeper, and recover there returns None (Go: "not called directly").
    defer!(move || {
        handle_panic(a.clone());
        push(&a, format!("closure recovers {}", recover().is_some()));
    });
    panic!("bad input");
}

rt_test! {
    fn recover_in_a_deferred_func_and_one_level_down() {
        let l = log();
        uses_handler(l.clone());
        closure_calls_handler(l.clone());
        assert_eq!(*l.borrow(), ["handled bad input", "closure recovers true"]);
    }
}

#[gort::func]
fn no_default() -> Box<dyn Fn() -> i32> {
    defer!(|| {
        recover();
    });
    panic!("nothing sets the result");
}

#[gort::func]
fn result_set_after_panic() -> Result<u8, String> {
    defer!(|r| {
        if let Some(p) = recover() {
            r.set(Err(format!("recovered: {p}")));
        }
    });
    let v: Vec<u8> = Vec::new();
    Ok(v[3])
}

#[gort::func]
fn result_zero_after_panic() -> Result<u8, String> {
    defer!(|| {
        recover();
    });
    panic!("the zero value of Result<u8, _> is Ok(0)");
}

rt_test! {
    fn results_after_recover() {
        assert_eq!(
            result_set_after_panic(),
            Err("recovered: runtime error: index out of range [3] with length 0".to_string())
        );
        assert_eq!(result_zero_after_panic(), Ok(0));
        let msg = gort::frame! {
            defer!(|r: &mut Named<String>| {
                let p = recover().expect("no_default panicked");
                r.set(p.to_string());
            });
            let _ = no_default();
            String::new()
        };
        assert!(
            msg.contains("no_default recovered from a panic, but nothing set its result"),
            "{msg}"
        );
    }
}

#[gort::func]
fn repanics() {
    defer!(|| {
        let p = recover().expect("panicking");
        assert!(p.location().is_some());
        p.repanic();
    });
    std::panic::panic_any(7u64);
}

rt_test! {
    fn repanic_keeps_the_value() {
        let v = gort::frame! {
            defer!(|r: &mut Named<u64>| {
                let p = recover().expect("repanicked");
                r.set(*p.downcast::<u64>().expect("a u64"));
            });
            repanics();
            0u64
        };
        assert_eq!(v, 7);
    }
}

#[gort::func]
fn goexit_deep(count: Arc<AtomicUsize>) {
    let c = count.clone();
    defer!(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    goexit();
}

rt_test! {
    fn goexit_runs_every_frame_and_join_reports_it() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let h = gort::spawn(gort::frame!(move || {
            let c2 = c.clone();
            defer!(move || {
                c2.fetch_add(10, Ordering::SeqCst);
            });
            goexit_deep(c);
            unreachable!("goexit does not return");
        }));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.join()));
        let msg = r.expect_err("no result").downcast::<String>().unwrap();
        assert!(msg.contains("called gort::goexit"), "{msg}");
        assert_eq!(count.load(Ordering::SeqCst), 11);
    }
}

#[test]
fn frames_and_recover_work_on_plain_threads() {
    // No runtime: a plain thread has a defer state of its own.
    let l = log();
    uses_handler(l.clone());
    assert_eq!(*l.borrow(), ["handled bad input"]);
    assert!(recover().is_none());
}

#[test]
fn goexit_outside_a_goroutine_panics_clearly() {
    let r = std::panic::catch_unwind(|| goexit());
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert!(
        msg.contains("gort::goexit must be called from a goroutine"),
        "{msg}"
    );
}

#[test]
fn run_reraises_an_unrecovered_goroutine_panic() {
    let r = std::panic::catch_unwind(|| {
        gort::run(|| {
            let h = gort::spawn(|| -> u32 { panic!("goroutine failed") });
            let _ = h.join();
        })
    });
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"goroutine failed"));
}

#[test]
fn main_goexit_under_run_is_a_fatal_error() {
    let r = std::panic::catch_unwind(|| gort::run(|| goexit()));
    let p = r.unwrap_err();
    assert_eq!(
        p.downcast_ref::<&str>(),
        Some(&"fatal error: no goroutines (main called runtime.Goexit) - deadlock!")
    );
}

#[test]
fn recovered_panics_print_nothing() {
    if !support::is_child() {
        let out = support::run_child("recovered_panics_print_nothing", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("panicked"), "Rust's hook printed: {err}");
        return;
    }
    gort::run(|| {
        let l = log();
        uses_handler(l.clone());
        assert_eq!(l.borrow().len(), 1);
    });
}

#[test]
fn an_unrecovered_panic_reports_the_chain_under_run() {
    if !support::is_child() {
        let out = support::run_child("an_unrecovered_panic_reports_the_chain_under_run", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("panic: first [recovered]\n\tpanic: second\n\ngoroutine 1 [running]:\n\tpanicked at"),
            "{err}"
        );
        return;
    }
    let r = std::panic::catch_unwind(|| {
        gort::run(gort::frame!(|| {
            defer!(|| {
                recover();
                panic!("second");
            });
            panic!("first");
        }))
    });
    assert!(r.is_err());
}

#[test]
fn panics_in_different_goroutines_stay_apart() {
    // recover in one goroutine never catches another's panic.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    gort::Builder::new().procs(2).run(move || {
        let wg = gort::WaitGroup::new();
        for i in 0..50i32 {
            wg.add(1);
            let (w, s) = (wg.clone(), s.clone());
            gort::go!(move || {
                defer!(w.done());
                defer!(move || {
                    let p: Option<Panic> = recover();
                    s.lock()
                        .unwrap()
                        .push(*p.unwrap().downcast::<i32>().unwrap());
                });
                gort::yield_now();
                std::panic::panic_any(i);
            });
        }
        wg.wait();
    });
    let mut v = seen.lock().unwrap().clone();
    v.sort();
    assert_eq!(v, (0..50).collect::<Vec<i32>>());
}

/// `#[gort::test]` bodies are frames: this test passes only because its own deferred call
/// recovers the panic.
#[gort::test]
fn a_test_body_is_a_frame() {
    defer!(|| {
        let p = recover().expect("the body panicked");
        assert_eq!(p.message(), Some("caught by the test's own frame"));
    });
    panic!("caught by the test's own frame");
}

/// Go's `defer close(out)` in a producer that keeps sending: the documented spelling
/// (`out.clone().close()`), and `(&out).close()` on a parameter, compile without the
/// `unused_parens` lint (denied here) and close the channel the caller reads.
#[deny(unused_parens)]
#[gort::func]
fn produce_closing(out: gort::Chan<u32>, by_ref: gort::Chan<u32>) {
    defer!(out.clone().close());
    defer!((&by_ref).close());
    for i in 0..3 {
        out.send(i);
        by_ref.send(i);
    }
}

rt_test! {
    fn defer_close_of_a_channel_the_body_keeps_using() {
        let (a, b) = (gort::Chan::new(3), gort::Chan::new(3));
        produce_closing(a.clone(), b.clone());
        assert_eq!((&a).into_iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!((&b).into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    }
}

/// `go!` with a parenthesised receiver or argument compiles without the `unused_parens`
/// lint (denied here): the parentheses the user needs are not needed in the expansion's
/// `let`s, and the lint's fix would change the meaning.
#[deny(unused_parens)]
fn go_with_parentheses(wg: &gort::WaitGroup, sum: &gort::Chan<u32>) {
    let w = wg.clone();
    gort::go!((w).done());
    let s = sum.clone();
    gort::go!(s.send((6)));
}

rt_test! {
    fn go_with_parenthesised_receivers_and_arguments() {
        let wg = gort::WaitGroup::new();
        wg.add(1);
        let sum = gort::Chan::new(1);
        go_with_parentheses(&wg, &sum);
        wg.wait();
        assert_eq!(sum.recv(), Some(6));
    }
}

/// Blocks in its `Drop`, which runs while a panic unwinds through its owner: a receive from
/// `from`, a sleep, and a contended lock of `lock`.
struct BlocksOnDrop {
    from: gort::Chan<u32>,
    lock: Arc<gort::Mutex<u32>>,
}

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        assert!(std::thread::panicking(), "dropped by the unwind");
        let v = self.from.recv().expect("a value comes");
        gort::time::sleep(std::time::Duration::from_micros(200));
        *self.lock.lock() += v;
        gort::yield_now();
    }
}

rt_test! {
    fn code_that_blocks_while_a_panic_unwinds_finishes_the_unwind_on_its_thread() {
        // Rust counts panics in progress per thread: a goroutine whose Drop code parked in
        // the middle of an unwind and resumed on another M left one thread counting a panic
        // that never ends there and made the other's count wrap when the unwind was caught
        // (an abort in debug builds). Such a goroutine now blocks its M instead.
        let lock = Arc::new(gort::Mutex::new(0));
        let wg = gort::WaitGroup::new();
        let feeds: Vec<gort::Chan<u32>> = (0..64).map(|_| gort::Chan::new(0)).collect();
        for feed in &feeds {
            wg.add(1);
            let (wg, from, lock) = (wg.clone(), feed.clone(), lock.clone());
            gort::go!(move || {
                defer!(wg.done());
                defer!(|| {
                    let p = recover().expect("the panic reaches the deferred call");
                    assert_eq!(p.to_string(), "unwinding through a blocking drop");
                    assert!(!std::thread::panicking(), "the unwind is over");
                });
                let _guard = BlocksOnDrop { from, lock };
                panic!("unwinding through a blocking drop");
            });
        }
        // Hold the lock while feeding, so that the drops contend for it.
        {
            let _held = lock.lock();
            for (i, feed) in feeds.iter().enumerate() {
                gort::time::sleep(std::time::Duration::from_micros(50));
                feed.send(i as u32);
            }
        }
        wg.wait();
        assert_eq!(*lock.lock(), (0..64).sum::<u32>());
        // Every M's count is back to zero: goroutines wherever they run see no panic in
        // progress, and can panic and recover again.
        let clean = Arc::new(AtomicUsize::new(0));
        for _ in 0..256 {
            wg.add(1);
            let (wg, clean) = (wg.clone(), clean.clone());
            gort::go!(move || {
                defer!(wg.done());
                defer!(|| {
                    assert!(recover().is_some());
                });
                if !std::thread::panicking() {
                    clean.fetch_add(1, Ordering::Relaxed);
                }
                gort::yield_now();
                panic!("again");
            });
        }
        wg.wait();
        assert_eq!(clean.load(Ordering::Relaxed), 256);
    }
}
