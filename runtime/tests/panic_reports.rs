//! What reports say and where they point: crash reports (Go's print format, printable values,
//! re-panics), throws, deadlock reports with the user's locations, `#[track_caller]` on the
//! public API, backtraces under `RUST_BACKTRACE`, and the notice of a runtime that cannot
//! decide whether it is deadlocked. Crashes run in child processes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gort::{Chan, WaitGroup};

/// Runs `f` in a goroutine of a fresh runtime in this (child) process; its crash report goes
/// to stderr.
fn crash(f: impl FnOnce() + Send + 'static) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gort::Builder::new().procs(2).run(f)
    }));
}

fn child(name: &str) -> (String, String, Option<i32>) {
    let out = support::run_child(name, &[]);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

macro_rules! child_test {
    ($name:ident, $body:block) => {
        #[test]
        fn $name() {
            if !support::is_child() {
                return;
            }
            $body
        }
    };
}

child_test!(float_child, {
    crash(|| std::panic::panic_any(-1.5f64));
});

#[test]
fn crash_reports_print_floats_as_go_does() {
    let (_, err, _) = child("float_child");
    assert!(err.contains("panic: -1.500000e+000\n"), "{err}");
}

child_test!(printable_child, {
    crash(|| gort::panic(std::net::Ipv4Addr::LOCALHOST));
    crash(|| gort::panic_error(std::io::Error::other("disk full")));
    // Go's `panic(recover())`: the same value again, printed by its text.
    crash(gort::frame!(|| {
        defer!(|| {
            let p = gort::recover().expect("panicking");
            std::panic::panic_any(p);
        });
        gort::panic(std::net::Ipv4Addr::new(10, 0, 0, 1));
    }));
});

#[test]
fn printable_values_and_repanics_print_their_text() {
    let (_, err, _) = child("printable_child");
    assert!(err.contains("panic: 127.0.0.1\n"), "{err}");
    assert!(err.contains("panic: disk full\n"), "{err}");
    assert!(
        err.contains("panic: 10.0.0.1 [recovered]\n\tpanic: 10.0.0.1\n"),
        "{err}"
    );
    assert!(!err.contains("cannot print"), "{err}");
}

child_test!(throw_mutex_child, {
    gort::Builder::new().procs(1).run(gort::frame!(|| {
        defer!(|| {
            let r = gort::recover();
            println!("deferred call ran (recovered: {})", r.is_some());
        });
        let m = gort::Mutex::new(0);
        // SAFETY: deliberately wrong: the mutex is not locked (the throw under test).
        unsafe { m.force_unlock() };
    }));
});

child_test!(throw_rwlock_child, {
    gort::Builder::new().procs(1).run(gort::frame!(|| {
        defer!(println!("deferred call ran"));
        let l = gort::RwLock::new(0);
        // SAFETY: deliberately wrong: not read-locked.
        unsafe { l.force_unlock_read() };
    }));
});

#[test]
fn unlock_of_unlocked_mutex_is_a_throw_not_a_panic() {
    for (name, text) in [
        (
            "throw_mutex_child",
            "fatal error: sync: unlock of unlocked mutex",
        ),
        (
            "throw_rwlock_child",
            "fatal error: sync: RUnlock of unlocked RWMutex",
        ),
    ] {
        let (out, err, code) = child(name);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(err.starts_with(text), "{name}: {err}");
        assert!(
            !err.contains("panic:"),
            "{name}: a throw is no panic: {err}"
        );
        assert!(
            err.contains("goroutine 1 [running]:\n\truntime/tests/panic_reports.rs:"),
            "{name}: points at the user's call: {err}"
        );
        assert!(
            !out.contains("deferred call ran"),
            "{name}: no deferred call runs: {out}"
        );
    }
}

child_test!(deadlock_child, {
    // `__private::test` is what `#[gort::test]` expands to: it knows the harness's main
    // thread only waits (a plain `gort::run` here could not decide; see the notice test).
    let _ = std::panic::catch_unwind(|| {
        gort::__private::test(Some(2), None, || {
            let ch: Chan<u8> = Chan::new(0);
            let c = ch.clone();
            gort::go!(move || c.send(1));
            let never: Chan<u8> = Chan::new(0);
            never.recv();
        })
    });
});

#[test]
fn deadlock_report_names_where_each_goroutine_waits_and_was_created() {
    let (_, err, _) = child("deadlock_child");
    assert!(
        err.starts_with("fatal error: all goroutines are asleep - deadlock!\n"),
        "{err}"
    );
    let file = "runtime/tests/panic_reports.rs:";
    let main = err
        .split("goroutine 1 [chan receive]:\n\t")
        .nth(1)
        .unwrap_or_else(|| panic!("main's header: {err}"));
    assert!(main.starts_with(file), "main's wait site: {err}");
    let other = err
        .split(" [chan send]:\n\t")
        .nth(1)
        .unwrap_or_else(|| panic!("the sender's header: {err}"));
    assert!(other.starts_with(file), "the sender's wait site: {err}");
    assert!(
        other.contains("created by goroutine 1\n\truntime/tests/panic_reports.rs:"),
        "where the sender was started: {err}"
    );
}

/// The line `at!(expr)` stands on, recorded as `expr` runs (a panic in `expr` must report
/// this line).
static AT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

macro_rules! at {
    ($e:expr) => {{
        AT.store(line!(), std::sync::atomic::Ordering::SeqCst);
        $e
    }};
}

type Check = Box<dyn FnOnce() + Send>;

/// The file and line a panic inside `f` (run in a goroutine) reports, and the line `at!`
/// recorded.
fn panic_line(f: impl FnOnce() + Send + 'static) -> ((String, u32), (String, u32)) {
    let got = gort::run(gort::frame!(move || -> (String, u32) {
        defer!(|r| {
            let p = gort::recover().expect("f panics");
            let l = p.location().expect("std reported it");
            r.set((l.file().to_string(), l.line()));
        });
        f();
        unreachable!("f panics")
    }));
    let want = (
        file!().to_string(),
        AT.load(std::sync::atomic::Ordering::SeqCst),
    );
    (got, want)
}

#[test]
fn panics_of_the_public_api_point_at_the_callers_line() {
    let checks: Vec<(&str, Check)> = vec![
        (
            "send on closed channel",
            Box::new(|| {
                let c = Chan::new(1);
                c.close();
                at!(c.send(1))
            }),
        ),
        (
            "close of closed channel",
            Box::new(|| {
                let c: Chan<u8> = Chan::new(1);
                c.close();
                at!(c.close())
            }),
        ),
        (
            "close of nil channel",
            Box::new(|| at!(Chan::<u8>::nil().close())),
        ),
        (
            "negative WaitGroup counter",
            Box::new(|| at!(WaitGroup::new().done())),
        ),
        (
            "select send on closed channel (a select! panics at its own line)",
            Box::new(|| {
                let c: Chan<u8> = Chan::new(0);
                c.close();
                at!(gort::select! { send(c, 1) => {} })
            }),
        ),
        (
            "makechan",
            Box::new(|| drop(at!(Chan::<u64>::new(usize::MAX)))),
        ),
        (
            "zero ticker interval",
            Box::new(|| drop(at!(gort::time::Ticker::new(Duration::ZERO)))),
        ),
    ];
    for (what, f) in checks {
        let (got, want) = panic_line(f);
        assert_eq!(got, want, "{what}");
    }
}

child_test!(outside_child, {
    let calls: Vec<Box<dyn Fn() + std::panic::RefUnwindSafe>> = vec![
        Box::new(|| {
            gort::goid();
        }),
        Box::new(|| gort::yield_now()),
        Box::new(|| {
            gort::num_goroutine();
        }),
        Box::new(|| {
            gort::gomaxprocs();
        }),
        Box::new(|| {
            gort::Handle::current();
        }),
        Box::new(|| {
            gort::time::after(Duration::from_secs(1));
        }),
        Box::new(|| {
            gort::time::tick(Duration::from_secs(1));
        }),
        Box::new(|| gort::go!(move || ())),
        Box::new(|| {
            gort::spawn(|| ());
        }),
        Box::new(|| gort::goexit()),
    ];
    for c in &calls {
        assert!(std::panic::catch_unwind(c).is_err());
    }
    eprintln!("calls: {}", calls.len());
});

#[test]
fn calls_outside_a_runtime_point_at_the_callers_line() {
    let (_, err, _) = child("outside_child");
    let n: usize = err
        .lines()
        .find_map(|l| l.strip_prefix("calls: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let sites: Vec<&str> = err.lines().filter(|l| l.contains("panicked at")).collect();
    assert_eq!(sites.len(), n, "{err}");
    for s in sites {
        assert!(s.contains("runtime/tests/panic_reports.rs:"), "{s}\n{err}");
    }
}

child_test!(repanic_child, {
    crash(gort::frame!(|| {
        defer!(|| {
            if let Some(p) = gort::recover() {
                p.repanic(); // the line the report must name
            }
        });
        panic!("first");
    }));
});

child_test!(recovered_site_child, {
    #[gort::func]
    fn maybe(recover_it: bool) {
        defer!(move || {
            if recover_it {
                gort::recover();
            }
        });
        panic!("site"); // one site, recovered first and crashing later
    }
    gort::run(|| maybe(true));
    crash(|| maybe(false));
});

#[test]
fn backtraces_under_rust_backtrace() {
    let run = |name: &str| {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env("GORT_CHILD", "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("repanic_child");
    assert!(
        err.contains("panic: first [recovered]\n\tpanic: first\n"),
        "{err}"
    );
    let site = err
        .lines()
        .find_map(|l| l.strip_prefix("\tpanicked at "))
        .unwrap_or_else(|| panic!("{err}"));
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/panic_reports.rs"
    ))
    .unwrap();
    let line: usize = site.split(':').nth(1).unwrap().parse().unwrap();
    assert!(
        src.lines().nth(line - 1).unwrap().contains("p.repanic()"),
        "a re-panic starts at repanic's caller: {site}"
    );
    assert!(
        !err.contains("run with `RUST_BACKTRACE=1`"),
        "it is set: {err}"
    );
    assert!(
        err.contains("stack backtrace") || err.contains(": "),
        "{err}"
    );

    let err = run("recovered_site_child");
    assert!(err.contains("panic: site\n"), "{err}");
    assert!(
        err.contains("note: no backtrace: panics that started here were recovered before"),
        "{err}"
    );
}

#[test]
fn plain_test_child_blocked_forever() {
    if !support::is_child() {
        return;
    }
    // Another thread that might send: deadlock detection cannot decide.
    std::thread::spawn(|| std::thread::sleep(Duration::from_secs(3600)));
    gort::Builder::new().procs(1).run(|| {
        let ch: Chan<u8> = Chan::new(0);
        ch.recv();
    });
}

#[test]
fn a_runtime_that_cannot_decide_says_so_instead_of_hanging_silently() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "plain_test_child_blocked_forever",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GORT_CHILD", "1")
        .env_remove("RUST_BACKTRACE")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    let mut seen = String::new();
    let deadline = Duration::from_secs(60);
    while start.elapsed() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if seen.contains("[chan receive]:\n\t") {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("gort: every goroutine has been blocked for 5 s"),
        "{seen}"
    );
    assert!(seen.contains("use #[gort::test]"), "{seen}");
    assert!(
        seen.contains("goroutine 1 [chan receive]:\n\truntime/tests/panic_reports.rs:"),
        "{seen}"
    );
}

/// What `recover` reports for a Rust run-time check raised for real (not from a copied
/// message): if rustc words one of these differently, this fails instead of gort silently
/// reporting a plain panic.
fn runtime_error_of(f: impl FnOnce() + Send + 'static) -> Option<String> {
    gort::run(gort::frame!(move || -> Option<String> {
        defer!(|r| {
            let p = gort::recover().expect("f panics");
            r.set(p.runtime_error().map(|e| e.to_string()));
            if r.is_none() {
                eprintln!("not recognised: {p}");
            }
        });
        f();
        unreachable!("f panics")
    }))
}

#[test]
fn rust_run_time_checks_read_as_go_runtime_errors() {
    use std::hint::black_box;
    let v = vec![0u8; 10];
    let cases: Vec<(Check, &str)> = vec![
        (
            Box::new(move || {
                let _ = black_box(&black_box(v.clone())[5..black_box(15)]);
            }),
            "runtime error: slice bounds out of range [:15] with capacity 10",
        ),
        (
            Box::new(|| {
                let v = black_box(vec![0u8; 10]);
                let _ = black_box(&v[black_box(3)..black_box(1)]);
            }),
            "runtime error: slice bounds out of range [3:1]",
        ),
        (
            Box::new(|| {
                let v = black_box(vec![0u8; 10]);
                let _ = black_box(&v[black_box(11)..]);
            }),
            "runtime error: slice bounds out of range [11:10]",
        ),
        (
            Box::new(|| {
                let v = black_box(vec![0u8; 10]);
                let _ = black_box(&v[..black_box(12)]);
            }),
            "runtime error: slice bounds out of range [:12] with capacity 10",
        ),
        (
            Box::new(|| {
                let v = black_box(vec![0u8; 3]);
                let _ = black_box(v[black_box(5)]);
            }),
            "runtime error: index out of range [5] with length 3",
        ),
        (
            Box::new(|| {
                let _ = black_box(Vec::<u64>::with_capacity(black_box(usize::MAX / 4)));
            }),
            "runtime error: makeslice: len out of range",
        ),
        (
            Box::new(|| {
                let _ = black_box(black_box(7) / black_box(0));
            }),
            "runtime error: integer divide by zero",
        ),
        (
            Box::new(|| {
                let _ = black_box(black_box(None::<u8>).unwrap());
            }),
            "runtime error: invalid memory address or nil pointer dereference",
        ),
    ];
    for (f, want) in cases {
        assert_eq!(runtime_error_of(f).as_deref(), Some(want));
    }
}

/// A `#[gort::main]` program whose goroutines all wait for a plain thread (a server waiting
/// for Ctrl-C through the `ctrlc` crate) is healthy: no notice about test harnesses, whatever
/// the wait.
fn main_mode_child_waiting_for_a_signal_thread() {
    let out = gort::__private::main(Some(1), None, || {
        let ch: Chan<u8> = Chan::new(0);
        let c = ch.clone();
        // The "signal": a plain thread sends after the notice's 5 s.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(6500));
            c.send(7);
        });
        ch.recv()
    });
    assert_eq!(out, Some(7));
}

#[test]
fn child_main_mode_waits_quietly() {
    if support::is_child() {
        main_mode_child_waiting_for_a_signal_thread();
    }
}

#[test]
fn a_main_program_waiting_for_a_plain_thread_is_not_told_about_tests() {
    let out = support::run_child("child_main_mode_waits_quietly", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("every goroutine has been blocked"),
        "a healthy #[gort::main] program was told: {err}"
    );
}

child_test!(send_then_deferred_close_child, {
    crash(gort::frame!(|| {
        let c: Chan<i32> = Chan::new(1);
        let d = c.clone();
        defer!(d.close());
        c.close();
        c.send(1); // the line Go's report names
    }));
});

#[test]
fn a_panic_in_a_deferred_call_names_the_panic_that_ran_it() {
    // Go: `panic: send on closed channel / panic: close of closed channel`, and the frame's
    // line is the send's (issue 22 §5: gort named only the deferred close).
    let (_, err, _) = child("send_then_deferred_close_child");
    assert!(
        err.contains("panic: send on closed channel\n\tpanic: close of closed channel\n"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("\tpanicked at "))
        .unwrap_or_else(|| panic!("{err}"));
    let site = |l: &str| {
        l.rsplit_once(".rs:")
            .map(|(_, n)| n.split(':').next().unwrap().to_string())
    };
    let close = site(lines[at]).unwrap();
    let send = lines[at + 1]
        .strip_prefix("\t\tin a deferred call run by the panic at runtime/tests/panic_reports.rs:")
        .unwrap_or_else(|| panic!("{err}"));
    let send: u32 = send.split(':').next().unwrap().parse().unwrap();
    assert_eq!(send, close.parse::<u32>().unwrap() + 2, "{err}");
}
