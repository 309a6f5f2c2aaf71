//! Go 1.19's own recover tests, ported: test/recover.go (test1 - test4, which pin where
//! `recover` works and Go's `defer recover()`) and test/recover1.go (test1 - test7: recover
//! during recursive panics, "here be dragons"). Go's `die()` becomes a recorded failure, so
//! a wrong answer fails the test instead of being swallowed by the panic it checks.
//!
//! Go's helpers are `#[gort::func]`s here: gort counts gort frames, not call frames, so a
//! helper must be a frame to count as a level for `recover` (docs/defer-panic-recover.md).

use std::sync::{Arc, Mutex};

use gort::{recover, Panic};

type Errs = Arc<Mutex<Vec<String>>>;

fn fail(e: &Errs, what: String) {
    e.lock().unwrap().push(what);
}

fn val(p: &Option<Panic>) -> Option<i32> {
    p.as_ref().map(|p| {
        *p.downcast_ref::<i32>()
            .expect("the tests panic with i32 values")
    })
}

// ---------------------------------------------------------------------------------------------
// test/recover.go

#[gort::func]
fn double_recover() -> Option<Panic> {
    recover()
}

/// Go: `mustRecoverBody(doubleRecover(), recover(), recover(), x)`.
#[gort::func]
fn must_recover_body(e: &Errs, x: i32) {
    let v1 = double_recover();
    let v2 = recover();
    let v3 = recover();
    if v1.is_some() {
        fail(e, format!("spurious recover {:?}", val(&v1)));
    }
    match val(&v2) {
        None => fail(e, format!("missing recover {x}")),
        Some(v) if v != x => fail(e, format!("wrong value {v} {x}")),
        _ => {}
    }
    if v3.is_some() {
        fail(e, "recover didn't recover".into());
    }
}

#[gort::func]
fn must_not_recover(e: &Errs) {
    let v = recover();
    if v.is_some() {
        fail(e, format!("spurious recover {:?}", val(&v)));
    }
}

#[gort::func]
fn without_recover(e: &Errs) {
    must_not_recover(e); // because it's a sub-call
}

#[gort::func]
fn without_recover_recursive(e: &Errs, n: i32) {
    if n == 0 {
        without_recover_recursive(e, 1);
    } else {
        let v = recover();
        if v.is_some() {
            fail(e, format!("spurious recover (recursive) {:?}", val(&v)));
        }
    }
}

#[gort::func]
fn r_test1(e: &Errs) {
    defer!(must_not_recover(e)); // because must_recover will squelch it
    defer!(must_recover_body(e, 1)); // because of panic below
    defer!(without_recover(e)); // should be no-op, leaving for must_recover to find
    defer!(without_recover_recursive(e, 0)); // ditto
    std::panic::panic_any(1i32);
}

#[gort::func]
fn r_test2(e: &Errs) {
    // Recover only sees the panic argument if it is called from a deferred call. It does not
    // see the panic when called from a call within a deferred call (too late) nor does it see
    // the panic when it *is* the deferred call (too early).
    defer!(must_recover_body(e, 2));
    defer!(recover()); // should be no-op
    std::panic::panic_any(2i32);
}

#[gort::func]
fn r_test3(e: &Errs) {
    defer!(must_not_recover(e));
    defer!(move || {
        recover(); // should squelch
    });
    std::panic::panic_any(3i32);
}

#[gort::func]
fn r_test4(e: &Errs) {
    // Equivalent to test3 but using defer to make the call.
    defer!(must_not_recover(e));
    defer!(move || {
        defer!(recover()); // should squelch
    });
    std::panic::panic_any(4i32);
}

// ---------------------------------------------------------------------------------------------
// test/recover1.go

/// recover1.go's `mustRecover`: recovers `x`, after a sub-call that must not.
#[gort::func]
fn must_recover(e: &Errs, x: i32) {
    must_not_recover(e); // because it's not a defer call
    let v = recover();
    match val(&v) {
        None => fail(e, format!("missing recover {x}")),
        Some(v) if v != x => fail(e, format!("wrong value {v} {x}")),
        _ => {}
    }
    // the value should be gone now regardless
    if recover().is_some() {
        fail(e, "recover didn't recover".into());
    }
}

#[gort::func]
fn r1_test1(e: &Errs) {
    // Easy nested recursive panic.
    defer!(must_recover(e, 1));
    defer!(move || {
        defer!(must_recover(e, 2));
        std::panic::panic_any(2i32);
    });
    std::panic::panic_any(1i32);
}

#[gort::func]
fn r1_test2(e: &Errs) {
    // Sequential panic.
    defer!(must_not_recover(e));
    defer!(move || {
        let v = recover();
        if val(&v) != Some(2) {
            fail(e, format!("wrong value {:?} 2", val(&v)));
        }
        defer!(must_recover(e, 3));
        std::panic::panic_any(3i32);
    });
    std::panic::panic_any(2i32);
}

#[gort::func]
fn r1_test3(e: &Errs) {
    // Sequential panic - like test2 but less picky.
    defer!(must_not_recover(e));
    defer!(move || {
        recover();
        defer!(must_recover(e, 3));
        std::panic::panic_any(3i32);
    });
    std::panic::panic_any(2i32);
}

#[gort::func]
fn r1_test4(e: &Errs) {
    // Single panic.
    defer!(must_not_recover(e));
    defer!(move || {
        recover();
    });
    std::panic::panic_any(4i32);
}

#[gort::func]
fn r1_test5(e: &Errs) {
    // Single panic but recover called via defer.
    defer!(must_not_recover(e));
    defer!(move || {
        defer!(recover());
    });
    std::panic::panic_any(5i32);
}

#[gort::func]
fn r1_test6(e: &Errs) {
    // Sequential panic. Like test3, but changed recover to defer (same change as test4 ->
    // test5).
    defer!(must_not_recover(e));
    defer!(move || {
        defer!(recover()); // like a normal call from this func; runs because must_recover stops the panic
        defer!(must_recover(e, 3));
        std::panic::panic_any(3i32);
    });
    std::panic::panic_any(2i32);
}

#[gort::func]
fn r1_test7(e: &Errs) {
    // Like test6, but swapped defer order. The recover in "defer recover()" is now a no-op,
    // because it runs called from panic, not from the func, and therefore cannot see the
    // panic of 2. (Alternately, it cannot see the panic of 2 because there is an active panic
    // of 3. And it cannot see the panic of 3 because it is at the wrong level (too high on the
    // stack).)
    defer!(must_recover(e, 2));
    defer!(move || {
        defer!(must_recover(e, 3));
        defer!(recover()); // now a no-op, unlike in test6.
        std::panic::panic_any(3i32);
    });
    std::panic::panic_any(2i32);
}

/// Runs one ported test in a goroutine of a fresh runtime and returns its failures; a panic
/// that escapes the test (one Go would have stopped) is a failure too.
fn check(test: fn(&Errs)) -> Vec<String> {
    let errs: Errs = Arc::default();
    let e = errs.clone();
    let escaped = std::panic::catch_unwind(move || {
        gort::Builder::new().procs(1).run(move || test(&e));
    });
    let mut got = errs.lock().unwrap().clone();
    if escaped.is_err() {
        got.push("a panic escaped the test".into());
    }
    got
}

macro_rules! go_test {
    ($($name:ident: $f:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let errs = check($f);
            assert!(errs.is_empty(), "{}: {errs:?}", stringify!($f));
        }
    )*};
}

go_test! {
    recover_go_test1: r_test1,
    recover_go_test2_deferred_recover_in_the_panicking_function_is_a_no_op: r_test2,
    recover_go_test3: r_test3,
    recover_go_test4_deferred_recover_in_a_deferred_function_stops_the_panic: r_test4,
    recover1_go_test1: r1_test1,
    recover1_go_test2: r1_test2,
    recover1_go_test3: r1_test3,
    recover1_go_test4: r1_test4,
    recover1_go_test5_recover_via_defer: r1_test5,
    recover1_go_test6_deferred_recover_after_a_recovered_nested_panic: r1_test6,
    recover1_go_test7_deferred_recover_run_by_a_panic_is_a_no_op: r1_test7,
}

/// `defer!(gort::recover())` spelled with the crate path behaves the same (the macro
/// recognises both spellings), and a `defer!(recover())` in a frame that is not a deferred
/// call under a panic does nothing.
#[test]
fn deferred_recover_spellings_and_plain_frames() {
    #[gort::func]
    fn qualified(e: &Errs) {
        defer!(must_not_recover(e));
        defer!(move || {
            defer!(gort::recover());
        });
        std::panic::panic_any(9i32);
    }
    #[gort::func]
    fn calm() -> i32 {
        defer!(recover());
        7
    }
    assert!(check(qualified).is_empty());
    assert_eq!(gort::run(calm), 7);
}
