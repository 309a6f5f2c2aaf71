//! The Go programs of `go/`, ported the way a Go programmer would write them with gort.
//!
//! Mapping: `func f()` with `defer` → `#[gort::func] fn f()` with `defer!`; `go func(){}()` →
//! `go!(move || ...)`; `fmt.Println` → `println!`; Go's `println` (stderr) → `eprintln!`;
//! `recover()` printed with `%v` → `show(gort::recover())` (`<nil>` for `None`); `make(chan T,
//! n)` → `Chan::new(n)`, `v, ok := <-c` → `c.recv()` (`None` for `!ok`), `select` → `select!`.
//! Go's pointers to locals that deferred closures read later become `Rc<Cell<_>>`, since a
//! deferred call runs after the body's locals are gone.
#![allow(
    unreachable_code,
    clippy::diverging_sub_expression,
    clippy::let_and_return,
    clippy::useless_vec
)]

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::fmt;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use gort::{go, goexit, recover, select, Chan, Panic, WaitGroup};

use crate::Case;

/// Go's `%v` of a recover result.
fn show(p: Option<Panic>) -> String {
    p.map_or_else(|| "<nil>".to_string(), |p| p.to_string())
}

macro_rules! cases {
    ($($name:literal => $m:path $(, differs: [$(($go:literal, $gort:literal)),* $(,)?])?;)*) => {
        pub fn all() -> Vec<Case> {
            vec![$(Case {
                name: $name,
                main: $m,
                stdout_differs: &[$($(($go, $gort)),*)?],
            }),*]
        }
    };
}

cases! {
    "001_defer_lifo" => c001::main;
    "002_defer_args_evaluated_at_defer" => c002::main;
    "003_defer_closure_captures_variable" => c003::main;
    "004_defer_pointer_vs_value_arg" => c004::main;
    "005_defer_modifies_named_result" => c005::main;
    "006_defer_unnamed_result_unaffected" => c006::main;
    "007_defer_loop_direct_args" => c007::main;
    "009_defer_loop_param_copy" => c009::main;
    "011_defer_in_if_else" => c011::main;
    "012_defer_nil_func_recovered" => c012::main;
    "014_defer_receiver_and_func_value_eval" => c014::main;
    "016_panic_unwinds_frames_running_defers" => c016::main;
    "017_recover_then_earlier_defers_still_run" => c017::main;
    "018_recover_nil_when_not_panicking" => c018::main;
    "019_recover_in_helper_returns_nil" => c019::main;
    "021_recover_in_closure_deferred_by_deferred" => c021::main;
    "024_recover_value_types" => c024::main;
    "026_repanic_after_recover" => c026::main;
    "027_article_panic_in_defer_replaces" => c027::main;
    "029_nested_panic_two_active" => c029::main;
    "030_multiple_recovers" => c030::main;
    "034_article_panic_and_recover" => c034::main;
    // Rust has no nil maps and no negative indices: the nearest Rust programs are an
    // `unwrap()` of a `None` map (gort's nil dereference) and `-1 as usize`.
    "035_runtime_errors_recovered" => c035::main, differs: [
        ("nil map write: \"assignment to entry in nil map\"",
         "nil map write: \"runtime error: invalid memory address or nil pointer dereference\""),
        ("negative index: \"runtime error: index out of range [-1]\"",
         "negative index: \"runtime error: index out of range [18446744073709551615] with length 3\""),
    ];
    "037_crash_index_out_of_range" => c037::main;
    "040_goexit_runs_defers" => c040::main;
    "041_goexit_recover_returns_nil" => c041::main;
    "043_goexit_panic_in_defer_recovered_by_earlier_defer" => c043::main;
    "046_goexit_in_defer_cancels_panic" => c046::main;
    "047_goexit_main_deadlock" => c047::main;
    "049_goroutine_panic_crashes_program" => c049::main;
    "051_defers_run_before_crash_report" => c051::main;
    "052_crash_recovered_then_new_panic" => c052::main;
    "053_crash_panic_chain" => c053::main;
    "058_crash_value_int" => c058::main;
    "059_crash_value_error" => c059::main;
    "063_chan_unbuffered_pingpong" => c063::main;
    "064_chan_buffered_len_cap" => c064::main;
    "065_chan_close_drain_zero_ok" => c065::main;
    "067_chan_close_send_panics" => c067::main;
    "068_select_default_and_nil_channels" => c068::main;
    "071_deadlock_main_blocked" => c071::main;
    "073_waitgroup_and_mutex" => c073::main;
    "075_sync_once" => c075::main;
    "077_chan_sieve" => c077::main;
    "079_main_return_does_not_wait" => c079::main;
}

mod c001 {
    fn func1() {
        println!("func1...");
    }
    fn func2() {
        println!("func2...");
    }
    fn func3() {
        println!("func3...");
    }

    #[gort::func]
    fn example() {
        defer!(println!("first"));
        defer!(println!("second"));
        defer!(println!("third"));
        println!("example body");
    }

    #[gort::func]
    fn example004() {
        defer!(println!("first"));
        defer!(println!("second"));
        println!("main");
    }

    #[gort::func]
    fn example000() {
        defer!(println!("clean up"));
        println!("example000 body");
    }

    #[gort::func]
    pub fn main() {
        example();
        example004();
        example000();
        defer!(func1());
        defer!(func2());
        defer!(func3());
        println!("main body");
    }
}

mod c002 {
    use super::*;

    fn print_i(i: i32) {
        println!("printI i: {i}");
    }

    #[gort::func]
    fn example() {
        let mut x = 10;
        defer!(println!("x = {}", x));
        x = 20;
        println!("example x is now {x}");
    }

    static COUNTER: AtomicI32 = AtomicI32::new(0);

    fn next() -> i32 {
        let c = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        println!("evaluating argument {c}");
        c
    }

    #[gort::func]
    fn side_effects() {
        defer!(println!("deferred call sees {} {}", next(), next()));
        println!(
            "sideEffects body, counter = {}",
            COUNTER.load(Ordering::Relaxed)
        );
    }

    #[gort::func]
    pub fn main() {
        example();
        side_effects();
        let mut i = 10;
        defer!(print_i(i * 10));
        i += 1;
        println!("main i: {i}");
    }
}

mod c003 {
    use super::*;

    fn print_i(i: i32) {
        println!("printI i: {i}");
    }

    static X: AtomicI32 = AtomicI32::new(10);

    #[gort::func]
    fn some_function() {
        defer!(|| println!("{}", X.load(Ordering::Relaxed)));
        X.store(11, Ordering::Relaxed);
    }

    // Go returns a pointer to a heap int that the deferred closure also reads.
    #[gort::func]
    fn bad_defer_usage() -> Rc<Cell<i32>> {
        let x = Rc::new(Cell::new(42));
        let seen = x.clone();
        defer!(move || println!("{}", seen.get()));
        x
    }

    #[gort::func]
    fn good_defer_usage() {
        let msg = "cleanup";
        defer!(println!("{}", msg));
    }

    #[gort::func]
    pub fn main() {
        some_function();
        let p = bad_defer_usage();
        println!("badDeferUsage returned pointer to {}", p.get());
        good_defer_usage();
        let i = Rc::new(Cell::new(10));
        let seen = i.clone();
        defer!(move || print_i(seen.get() * 10));
        i.set(i.get() + 1);
        println!("main i: {}", i.get());
    }
}

mod c004 {
    use super::*;

    #[derive(Clone)]
    struct User {
        name: String,
    }

    #[gort::func]
    fn test_user_ptr() -> Rc<RefCell<User>> {
        let user = Rc::new(RefCell::new(User {
            name: String::new(),
        }));
        user.borrow_mut().name = "name-1".into();
        defer!((|u: Rc<RefCell<User>>| u.borrow_mut().name = "name-defer".into())(user.clone()));
        user.borrow_mut().name = "name-2".into();
        user
    }

    #[gort::func]
    fn test_user_val() -> User {
        let mut user = User {
            name: String::new(),
        };
        user.name = "name-1".into();
        defer!((|mut u: User| u.name = "name-defer".into())(user.clone()));
        user.name = "name-2".into();
        user
    }

    #[gort::func]
    pub fn main() {
        // Go's %v of a *User is &{...}, of a User {...}.
        println!("&{{{}}}", test_user_ptr().borrow().name);
        println!("{{{}}}", test_user_val().name);
    }
}

mod c005 {
    // Go's named results are the frame's result, which `defer!(|r| ...)` gets as `&mut`.
    #[gort::func]
    fn get_i() -> i32 {
        defer!(|i| *i *= 10);
        20
    }

    #[gort::func]
    fn f() -> i32 {
        defer!(|r| *r += 1);
        5
    }

    #[gort::func]
    fn spec() -> i32 {
        defer!(|result| *result *= 7);
        6
    }

    #[gort::func]
    fn two_defers() -> String {
        defer!(|s| *s += "-d1");
        defer!(|s| *s += "-d2");
        "ret".to_string()
    }

    #[gort::func]
    pub fn main() {
        println!("{}", get_i());
        println!("{}", f());
        println!("{}", spec());
        println!("{}", two_defers());
    }
}

mod c006 {
    use super::*;

    #[gort::func]
    fn g() -> i32 {
        let x = Rc::new(Cell::new(5));
        let seen = x.clone();
        defer!(move || {
            seen.set(seen.get() * 10);
            println!("defer sees x = {}", seen.get());
        });
        x.get()
    }

    #[gort::func]
    fn h() -> i32 {
        defer!(|x| *x *= 10);
        5
    }

    #[gort::func]
    fn k() -> i32 {
        let r = 0;
        // The parameter is a copy of r (0) taken now; the result is not touched.
        defer!((|mut r: i32| {
            r *= 10;
            let _ = r;
        })(r));
        let r = 3;
        r
    }

    #[gort::func]
    pub fn main() {
        println!("g() = {}", g());
        println!("h() = {}", h());
        println!("k() = {}", k());
    }
}

mod c007 {
    #[gort::func]
    fn looped() {
        for i in 0..3 {
            defer!(println!("{}", i));
        }
    }

    #[gort::func]
    fn spec() {
        for i in 0..=3 {
            defer!(print!("{}", i));
        }
    }

    #[gort::func]
    pub fn main() {
        looped();
        spec();
        println!();
    }
}

mod c009 {
    #[gort::func]
    pub fn main() {
        for i in 0..3 {
            defer!((|val: i32| println!("{val}"))(i));
        }
    }
}

mod c011 {
    #[gort::func]
    fn branch(condition: bool) {
        if condition {
            defer!(println!("A"));
        } else {
            defer!(println!("B"));
        }
        println!("after if/else, condition = {condition}");
    }

    #[gort::func]
    pub fn main() {
        branch(true);
        branch(false);
    }
}

mod c012 {
    use super::*;

    static X: AtomicI32 = AtomicI32::new(0);

    /// Calls a function value that may be nil (Rust has no nil `fn`): Go's call of a nil func.
    fn call(f: Option<fn()>) {
        f.unwrap()()
    }

    #[gort::func]
    fn f() {
        let nilf: Option<fn()> = None;
        defer!(call(nilf));
        X.store(1, Ordering::Relaxed);
        println!(
            "body after defer nilf() ran, x = {}",
            X.load(Ordering::Relaxed)
        );
    }

    #[gort::func]
    pub fn main() {
        defer!(|| {
            let err = recover();
            let is_runtime_error = err.as_ref().is_some_and(|p| p.runtime_error().is_some());
            println!("recovered: {}", show(err));
            println!("is runtime.Error: {is_runtime_error}");
            println!("x = {}", X.load(Ordering::Relaxed));
        });
        f();
        println!("not reached");
    }
}

mod c014 {
    use super::*;

    struct T {
        n: Cell<i32>,
    }

    impl T {
        /// Go's value receiver: a copy.
        fn copy(&self) -> T {
            T {
                n: Cell::new(self.n.get()),
            }
        }
        fn val(self) {
            println!("value receiver sees {}", self.n.get());
        }
        /// Go's pointer receiver.
        fn ptr(self: Rc<Self>) {
            println!("pointer receiver sees {}", self.n.get());
        }
    }

    #[gort::func]
    fn methods() {
        let t = Rc::new(T { n: Cell::new(1) });
        defer!(t.copy().val()); // the receiver (a copy, n = 1) is evaluated now
        defer!(t.clone().ptr()); // the pointer is evaluated now; it sees later writes
        t.n.set(2);
    }

    #[gort::func]
    fn func_values() {
        let mut f: fn() = || println!("first f");
        defer!(f()); // f evaluated now
        f = || println!("second f");
        defer!(f());
        let g: Rc<Cell<fn()>> = Rc::new(Cell::new(|| println!("g before reassignment")));
        let seen = g.clone();
        defer!(move || (seen.get())()); // the closure reads g when it runs
        g.set(|| println!("g after reassignment"));
    }

    #[gort::func]
    pub fn main() {
        methods();
        func_values();
    }
}

mod c016 {
    use super::*;

    #[gort::func]
    fn level3() {
        defer!(println!("defer level3"));
        panic!("deep");
    }

    #[gort::func]
    fn level2() {
        defer!(println!("defer level2"));
        level3();
        println!("not reached 2");
    }

    #[gort::func]
    fn level1() {
        defer!(|| println!("level1 recovered: {}", show(recover())));
        defer!(println!("defer level1"));
        level2();
        println!("not reached 1");
    }

    #[gort::func]
    pub fn main() {
        level1();
        println!("main continues");
    }
}

mod c017 {
    use super::*;

    #[gort::func]
    fn f() -> String {
        defer!(|r| {
            println!("earlier defer still runs after recovery");
            *r += "+earlier";
        });
        defer!(|r| {
            let v = recover();
            println!("recovered: {}", show(v));
            r.set("recovered".to_string());
        });
        defer!(println!("last-registered defer runs first"));
        panic!("p");
    }

    #[gort::func]
    pub fn main() {
        println!("f() = {}", f());
    }
}

mod c018 {
    use super::*;

    fn normal() {
        println!("recover in ordinary call: {}", show(recover()));
    }

    #[gort::func]
    fn deferred_no_panic() {
        defer!(|| println!("recover in defer, no panic: {}", show(recover())));
        println!("deferredNoPanic body");
    }

    #[gort::func]
    fn after_recovered() {
        defer!(|| {
            println!(
                "second defer after panic was recovered: {}",
                show(recover())
            )
        });
        defer!(|| println!("first defer recovers: {}", show(recover())));
        panic!("only once");
    }

    #[gort::func]
    pub fn main() {
        println!("recover in main: {}", show(recover()));
        normal();
        deferred_no_panic();
        after_recovered();
    }
}

mod c019 {
    use super::*;

    // Helpers are `#[gort::func]`s: a frame entered by the deferred call is a level, so
    // recover there returns None, as Go's "not called directly by the deferred function".
    #[gort::func]
    fn helper() -> Option<Panic> {
        recover()
    }

    #[gort::func]
    fn recursive(n: i32) -> Option<Panic> {
        if n == 0 {
            return recursive(1);
        }
        recover()
    }

    #[gort::func]
    fn f() {
        defer!(|| println!("direct recover: {}", show(recover())));
        defer!(|| {
            println!("helper recover: {}", show(helper()));
            println!("recursive helper recover: {}", show(recursive(0)));
        });
        panic!("boom");
    }

    #[gort::func]
    pub fn main() {
        f();
        println!("main continues");
    }
}

mod c021 {
    use super::*;

    #[gort::func]
    fn f() {
        defer!(|| {
            defer!(|| println!("inner deferred closure recover: {}", show(recover())));
            println!("outer deferred function running");
        });
        panic!("A");
    }

    #[gort::func]
    pub fn main() {
        gort::frame! {
            defer!(|| println!("caller's deferred recover: {}", show(recover())));
            f();
            println!("not reached");
        };
        println!("main continues");
    }
}

mod c024 {
    use super::*;

    #[derive(Debug)]
    struct MyErr {
        code: i32,
    }
    impl fmt::Display for MyErr {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "myerr code {}", self.code)
        }
    }
    impl Error for MyErr {}

    /// Go's `errors.New("sentinel error")`.
    #[derive(Debug)]
    struct Sentinel;
    impl fmt::Display for Sentinel {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("sentinel error")
        }
    }
    impl Error for Sentinel {}

    /// Go's `fmt.Errorf("wrapped: %w", ErrSentinel)`.
    #[derive(Debug)]
    struct Wrapped(Sentinel);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "wrapped: {}", self.0)
        }
    }
    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Go's `errors.Is(err, ErrSentinel)`: walks the chain.
    fn is_sentinel(mut e: &(dyn Error + 'static)) -> bool {
        loop {
            if e.is::<Sentinel>() {
                return true;
            }
            match e.source() {
                Some(s) => e = s,
                None => return false,
            }
        }
    }

    #[derive(Clone, Copy)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[derive(Clone, Copy)]
    struct Level(i32);

    /// Go's `%v`: gort prints strings, numbers and errors; Go also prints structs and named
    /// types through reflection, which Rust does not have, so the port formats those two.
    fn v(p: &Panic) -> String {
        if let Some(pt) = p.downcast_ref::<Point>() {
            format!("{{{} {}}}", pt.x, pt.y)
        } else if let Some(l) = p.downcast_ref::<Level>() {
            l.0.to_string()
        } else {
            p.to_string()
        }
    }

    #[gort::func]
    fn catch(name: &str, f: fn()) {
        defer!(move || {
            let r = recover().expect("every case panics");
            println!("{name}: {}", v(&r));
            if let Some(s) = r.message() {
                println!("  type string, len {}", s.len());
            } else if let Some(i) = r.downcast_ref::<i32>() {
                println!("  type int, +1 = {}", i + 1);
            } else if let Some(x) = r.downcast_ref::<f64>() {
                println!("  type float64, *2 = {}", x * 2.0);
            } else if let Some(e) = r.as_error().and_then(|e| e.downcast_ref::<MyErr>()) {
                println!("  type *MyErr, code {}", e.code);
            } else if let Some(pt) = r.downcast_ref::<Point>() {
                println!("  type Point, X+Y = {}", pt.x + pt.y);
            } else if let Some(l) = r.downcast_ref::<Level>() {
                println!("  type Level {}", l.0);
            } else if let Some(e) = r.as_error() {
                println!("  an error, is sentinel: {}", is_sentinel(e));
            }
        });
        f();
    }

    #[gort::func]
    pub fn main() {
        catch("string", || panic!("str value"));
        catch("int", || std::panic::panic_any(42i32));
        catch("float", || std::panic::panic_any(2.5f64));
        catch("errors.New", || gort::panic_error(Sentinel));
        catch("wrapped", || gort::panic_error(Wrapped(Sentinel)));
        catch("custom error", || gort::panic_error(MyErr { code: 7 }));
        catch("struct", || std::panic::panic_any(Point { x: 1, y: 2 }));
        catch("named int", || std::panic::panic_any(Level(3)));
    }
}

mod c026 {
    use super::*;

    #[gort::func]
    fn inner() {
        defer!(|| {
            let r = show(recover());
            println!("inner recovered: {r}");
            panic!("re-panic({r})");
        });
        panic!("original");
    }

    #[gort::func]
    fn outer() {
        defer!(|| println!("outer recovered: {}", show(recover())));
        inner();
        println!("not reached");
    }

    #[gort::func]
    pub fn main() {
        outer();
        println!("main continues");
    }
}

mod c027 {
    use super::*;

    #[gort::func]
    fn panic_and_recover() {
        defer!(|| {
            println!("第 1 个入栈的 defer");
            if let Some(err) = recover() {
                println!("最终捕获的 panic: {err}");
            }
        });
        defer!(|| {
            println!("第 2 个入栈的 defer");
            panic!("第 2 个入栈的 defer 发生 panic");
        });
        println!("panicAndRecover 函数中正常流程");
        panic!("panicAndRecover 出现异常");
        println!("panic 后的语句永远执行不到");
    }

    #[gort::func]
    pub fn main() {
        panic_and_recover();
        println!("正常回到 main");
    }
}

mod c029 {
    use super::*;

    #[gort::func]
    fn f() {
        defer!(|| println!("outer recover: {}", show(recover())));
        defer!(|| {
            defer!(|| println!("inner recover: {}", show(recover())));
            std::panic::panic_any(2i32);
        });
        std::panic::panic_any(1i32);
    }

    #[gort::func]
    fn helper_that_panics_and_recovers() {
        defer!(|| { println!("helper recovered its own panic: {}", show(recover())) });
        panic!("helper panic");
    }

    #[gort::func]
    fn g() {
        defer!(|| println!("g recover: {}", show(recover())));
        defer!(|| {
            helper_that_panics_and_recovers();
            println!("deferred function returns normally; original panic continues");
        });
        panic!("original");
    }

    #[gort::func]
    pub fn main() {
        f();
        g();
        println!("main continues");
    }
}

mod c030 {
    use super::*;

    #[gort::func]
    fn f() {
        defer!(|| println!("other defer: {}", show(recover())));
        defer!(|| {
            println!("first: {}", show(recover()));
            println!("second: {}", show(recover()));
        });
        panic!("once");
    }

    #[gort::func]
    pub fn main() {
        f();
        println!("main continues");
    }
}

mod c034 {
    use super::*;

    #[gort::func]
    fn panic_and_recover() {
        defer!(|| {
            if let Some(err) = recover() {
                println!("{err}");
            }
        });
        println!("函数中正常流程");
        panic!("出现异常");
        println!("panic 后的语句永远执行不到");
    }

    #[gort::func]
    fn article000() {
        defer!(println!("清理资源"));
        defer!(|| {
            if let Some(r) = recover() {
                println!("捕获异常: {r}");
            }
        });
        panic!("触发异常");
    }

    #[gort::func]
    pub fn main() {
        panic_and_recover();
        println!("正常回到 main");
        article000();
        println!("article000 returned");
    }
}

mod c035 {
    use super::*;
    use std::collections::HashMap;

    struct S {
        v: i32,
    }

    #[gort::func]
    fn check(name: &str, f: &dyn Fn()) {
        defer!(move || match recover() {
            Some(p) => match p.as_error() {
                Some(e) => println!(
                    "{name}: {:?} error=true runtime.Error={}",
                    e.to_string(),
                    p.runtime_error().is_some()
                ),
                None => println!("{name}: {p} error=false runtime.Error=false"),
            },
            None => println!("{name}: <nil> error=false runtime.Error=false"),
        });
        f();
    }

    #[gort::func]
    pub fn main() {
        let m: Option<HashMap<&str, i32>> = black_box(None);
        let s = vec![1, 2, 3];
        let i: usize = black_box(5);
        let zero: i32 = black_box(0);
        let p: Option<&S> = black_box(None);
        check("nil map write", &|| {
            m.clone().unwrap().insert("a", 1);
        });
        check("nil map read is fine", &|| {
            let v = m.as_ref().and_then(|m| m.get("a")).copied().unwrap_or(0);
            println!("  read from nil map: {v}");
        });
        check("index out of range", &|| println!("{}", s[i]));
        check("negative index", &|| {
            let j: i64 = black_box(-1);
            println!("{}", s[j as usize]);
        });
        check("divide by zero", &|| println!("{}", 10 / zero));
        check("modulo by zero", &|| println!("{}", 10 % zero));
        check("nil pointer", &|| println!("{}", p.unwrap().v));
    }
}

mod c037 {
    use super::*;

    #[gort::func]
    pub fn main() {
        defer!(println!("deferred call runs before the crash report"));
        let s = vec![1, 2, 3];
        let i: usize = black_box(5);
        println!("{}", s[i]);
    }
}

mod c040 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let wg = WaitGroup::new();
        wg.add(1);
        let w = wg.clone();
        go!(move || {
            defer!(w.done());
            defer!(println!("defer 1 (registered first) runs last"));
            defer!(println!("defer 2 runs first"));
            println!("goroutine before Goexit");
            goexit();
            println!("not reached");
        });
        wg.wait();
        println!("main continues after goroutine exited");
    }
}

mod c041 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let c = Chan::new(0);
        let c2 = c.clone();
        go!(move || {
            defer!(move || c2.send("goroutine finished (Goexit not stopped)"));
            defer!(|| {
                let r = recover();
                println!("recover during Goexit: {}", show(r));
            });
            goexit();
        });
        println!("{}", c.recv().expect("sent"));
    }
}

mod c043 {
    use super::*;

    #[gort::func]
    fn work() {
        defer!(println!("first-registered defer still runs"));
        defer!(|| println!("recovered: {}", show(recover())));
        defer!(|| panic!("hello"));
        goexit();
    }

    #[gort::func]
    pub fn main() {
        let done = Chan::new(0);
        let d = done.clone();
        go!(move || {
            defer!(move || d.send(true));
            work();
            println!("caller resumed after work() (not reached: Goexit continues)");
        });
        done.recv();
        println!("main continues");
    }
}

mod c046 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let done = Chan::new(0);
        let d = done.clone();
        go!(move || {
            defer!(move || d.send(true));
            defer!(|| {
                println!("deferred call calls Goexit while panicking");
                goexit();
            });
            panic!("this panic is never reported");
        });
        done.recv();
        println!("main continues; no crash");
    }
}

mod c047 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let release = Chan::new(0);
        let r = release.clone();
        go!(move || {
            r.recv();
            println!("other goroutine runs after main's defers and finishes");
        });
        defer!(move || {
            println!("main's deferred call runs during Goexit");
            release.send(true);
        });
        goexit();
        println!("not reached");
    }
}

mod c049 {
    use super::*;

    #[gort::func]
    pub fn main() {
        defer!(println!("main's deferred call (never runs)"));
        let started = Chan::new(0);
        let s = started.clone();
        go!(move || {
            defer!(println!("goroutine's deferred call runs"));
            s.recv();
            panic!("boom in goroutine");
        });
        println!("main before blocking");
        started.send(true);
        select! {}
    }
}

mod c051 {
    #[gort::func]
    fn inner() {
        defer!(eprintln!("deferred in inner"));
        panic!("boom");
    }

    #[gort::func]
    pub fn main() {
        defer!(eprintln!("deferred in main"));
        inner();
    }
}

mod c052 {
    use super::*;

    #[gort::func]
    pub fn main() {
        defer!(|| {
            recover();
            panic!("second panic");
        });
        panic!("first panic");
    }
}

mod c053 {
    #[gort::func]
    fn pt1() {
        defer!(|| panic!("panic pt1"));
        pt2();
    }

    #[gort::func]
    fn pt2() {
        defer!(|| panic!("panic pt2"));
        panic!("hello");
    }

    #[gort::func]
    pub fn main() {
        pt1();
    }
}

mod c058 {
    #[gort::func]
    pub fn main() {
        std::panic::panic_any(42i32);
    }
}

mod c059 {
    #[gort::func]
    pub fn main() {
        let e: Box<dyn std::error::Error + Send + Sync> = "something failed".into();
        std::panic::panic_any(e);
    }
}

mod c079 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let block: Chan<bool> = Chan::new(0);
        let started = Chan::new(0);
        let s = started.clone();
        go!(move || {
            defer!(println!("goroutine deferred call (never runs)"));
            s.send(true);
            block.recv();
            println!("never printed");
        });
        started.recv();
        println!("main returns without waiting");
    }
}

mod c063 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let (ping, pong) = (Chan::<i32>::new(0), Chan::<i32>::new(0));
        println!("len/cap unbuffered: {} {}", ping.len(), ping.cap());
        let (p, q) = (ping.clone(), pong.clone());
        go!(move || {
            for v in &p {
                println!("pong got {v}");
                q.send(v + 1);
            }
            println!("ping closed, pong closing");
            q.close();
        });
        for i in 0..3 {
            ping.send(i * 10);
            println!("ping got {}", pong.recv().expect("open"));
        }
        ping.close();
        let r = pong.recv();
        println!("after close: {} {}", r.unwrap_or_default(), r.is_some());
    }
}

mod c064 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let c = Chan::new(3);
        println!("empty: {} {}", c.len(), c.cap());
        c.send(1);
        c.send(2);
        println!("after 2 sends: {} {}", c.len(), c.cap());
        c.send(3);
        select! {
            send(c, 4) => println!("sent 4 (unexpected)"),
            default => println!("buffer full: send would block"),
        }
        println!("received {} len now {}", c.recv().expect("open"), c.len());
        c.send(4);
        while !c.is_empty() {
            println!("FIFO: {}", c.recv().expect("open"));
        }
        select! {
            recv(c) -> v => println!("received (unexpected) {v:?}"),
            default => println!("buffer empty: receive would block"),
        }
        let nilc: Chan<i32> = Chan::nil();
        println!("nil channel: {} {}", nilc.len(), nilc.cap());
    }
}

mod c065 {
    use super::*;

    #[derive(Default)]
    struct Pair {
        n: i32,
        s: String,
    }

    #[gort::func]
    pub fn main() {
        let c = Chan::new(2);
        c.send("a");
        c.send("b");
        c.close();
        println!("len after close: {}", c.len());
        for _ in 0..4 {
            let r = c.recv();
            println!("{:?} {}", r.unwrap_or_default(), r.is_some());
        }
        let u: Chan<i32> = Chan::new(0);
        let result = Chan::new(0);
        let (u2, res) = (u.clone(), result.clone());
        go!(move || {
            let r = u2.recv(); // blocks until close
            res.send(format!(
                "blocked receiver woke with {} {}",
                r.unwrap_or_default(),
                r.is_some()
            ));
        });
        u.close();
        println!("{}", result.recv().expect("sent"));
        let ps: Chan<Pair> = Chan::new(0);
        ps.close();
        let r = ps.recv();
        let ok = r.is_some();
        let p = r.unwrap_or_default();
        // Go's %+v of a struct.
        println!("struct zero value: {{n:{} s:{}}} {ok}", p.n, p.s);
    }
}

mod c067 {
    use super::*;

    #[gort::func]
    fn check(name: &str, f: fn()) {
        defer!(move || {
            let r = recover();
            let is_runtime = r.as_ref().is_some_and(|p| p.runtime_error().is_some());
            println!("{name}: {} (runtime.Error={is_runtime})", show(r));
        });
        f();
    }

    #[gort::func]
    pub fn main() {
        check("send on closed", || {
            let c = Chan::new(1);
            c.close();
            c.send(1);
        });
        check("close of closed", || {
            let c: Chan<i32> = Chan::new(0);
            c.close();
            c.close();
        });
        check("close of nil", || {
            let c: Chan<i32> = Chan::nil();
            c.close();
        });
        check("select send on closed", || {
            let c = Chan::new(0);
            c.close();
            select! {
                send(c, 1) => {}
                default => println!("default (not taken)"),
            }
        });
        let c = Chan::<i32>::new(0);
        let done = Chan::new(0);
        let (c2, d) = (c.clone(), done.clone());
        go!(move || {
            defer!(move || d.send(format!("blocked sender: {}", show(recover()))));
            c2.send(1); // blocks (no receiver) until close
        });
        c.close();
        println!("{}", done.recv().expect("sent"));
    }
}

mod c068 {
    use super::*;

    #[gort::func]
    pub fn main() {
        let nilch: Option<Chan<i32>> = None;
        let c = Chan::new(1);
        select! {
            recv(c) -> v => println!("received {v:?}"),
            default => println!("default: nothing to receive"),
        }
        select! {
            send(nilch, 1) => println!("sent on nil channel (impossible)"),
            recv(nilch) -> _ => println!("received from nil channel (impossible)"),
            default => println!("default: nil channels never ready"),
        }
        c.send(7);
        for _ in 0..20 {
            select! {
                recv(nilch) -> _ => println!("nil channel chosen (impossible)"),
                recv(c) -> v => {
                    let v = v.expect("open");
                    println!("ready case chosen over nil channel: {v}");
                    c.send(v);
                }
            }
        }
        c.recv();
        // Drain two channels, disabling each case by setting it to nil once closed.
        let (a, b) = (Chan::new(3), Chan::new(3));
        for i in 1..=3 {
            a.send(i);
            b.send(i * 10);
        }
        a.close();
        b.close();
        let (mut a, mut b) = (Some(a), Some(b));
        let (mut sum_a, mut sum_b) = (0, 0);
        while a.is_some() || b.is_some() {
            select! {
                recv(a) -> v => match v {
                    None => {
                        a = None;
                        continue;
                    }
                    Some(v) => sum_a += v,
                },
                recv(b) -> v => match v {
                    None => {
                        b = None;
                        continue;
                    }
                    Some(v) => sum_b += v,
                },
            }
        }
        println!("sums: {sum_a} {sum_b}");
    }
}

mod c071 {
    use super::*;

    #[gort::func]
    pub fn main() {
        defer!(println!(
            "deferred (never runs: fatal errors do not unwind)"
        ));
        let c: Chan<i32> = Chan::new(0);
        println!("main blocks on receive");
        c.recv();
    }
}

mod c073 {
    use super::*;
    use std::collections::BTreeMap;

    /// Go's three package variables behind one `sync.Mutex`.
    struct State {
        data: BTreeMap<String, String>,
        counter: i32,
        total: i32,
    }

    static MU: gort::Mutex<State> = gort::Mutex::new(State {
        data: BTreeMap::new(),
        counter: 0,
        total: 0,
    });

    #[gort::func]
    fn unsafe_update(key: String, value: String) {
        let mut st = MU.lock(); // the guard is Go's `defer mu.Unlock()`
        st.data.insert(key, value);
    }

    #[gort::func]
    fn safe_worker() {
        MU.lock().counter += 1;
        defer!(|| MU.lock().counter -= 1);
    }

    #[gort::func]
    fn add(n: i32) {
        MU.lock().total += n;
    }

    #[gort::func]
    fn panics_while_locked() {
        defer!(|| {
            recover();
        });
        let _st = MU.lock();
        panic!("inside critical section");
    }

    #[gort::func]
    pub fn main() {
        let wg = WaitGroup::new();
        for i in 0..50 {
            wg.add(1);
            let w = wg.clone();
            go!(move || {
                defer!(w.done());
                unsafe_update(format!("k{i:02}"), i.to_string());
                safe_worker();
                add(i);
            });
        }
        wg.wait();
        {
            let st = MU.lock();
            let keys: Vec<&String> = st.data.keys().collect();
            println!(
                "entries: {} first: {} last: {}",
                st.data.len(),
                keys[0],
                keys[keys.len() - 1]
            );
            println!("counter after all safeWorkers: {}", st.counter);
            println!("total: {}", st.total);
        }
        panics_while_locked();
        match MU.try_lock() {
            Some(_st) => {
                println!("mutex was released by the deferred Unlock during the panic")
            }
            None => println!("mutex still locked"),
        }
    }
}

mod c075 {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[gort::func]
    pub fn main() {
        let once = Arc::new(gort::Once::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let wg = WaitGroup::new();
        for _ in 0..20 {
            wg.add(1);
            let (once, calls, w) = (once.clone(), calls.clone(), wg.clone());
            go!(move || {
                defer!(w.done());
                once.call_once(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                });
            });
        }
        wg.wait();
        println!("init calls: {}", calls.load(Ordering::SeqCst));
        let once2 = gort::Once::new();
        gort::frame! {
            defer!(|| println!("Do panicked: {}", show(recover())));
            once2.call_once(|| panic!("init failed"));
        };
        let ran = Cell::new(false);
        once2.call_once(|| ran.set(true));
        println!("second Do ran its function: {}", ran.get());
    }
}

mod c077 {
    use super::*;

    fn generate(ch: Chan<i32>) {
        let mut i = 2;
        loop {
            ch.send(i);
            i += 1;
        }
    }

    fn filter(input: Chan<i32>, out: Chan<i32>, prime: i32) {
        for i in &input {
            if i % prime != 0 {
                out.send(i);
            }
        }
    }

    fn sieve(primes: Chan<i32>) {
        let mut ch = Chan::new(0);
        go!(generate(ch.clone()));
        loop {
            let prime = ch.recv().expect("open");
            primes.send(prime);
            let ch1 = Chan::new(0);
            go!(filter(ch.clone(), ch1.clone(), prime));
            ch = ch1;
        }
    }

    #[gort::func]
    pub fn main() {
        let primes = Chan::new(0);
        go!(sieve(primes.clone()));
        for _ in 0..25 {
            print!("{} ", primes.recv().expect("open"));
        }
        println!();
    }
}
