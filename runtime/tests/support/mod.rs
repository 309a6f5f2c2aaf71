//! Helpers shared by the behaviour tests.
#![allow(dead_code, unused_macros)]

use std::process::{Command, Output};

/// Runs the test named `name` of the current test binary in a child process with
/// `GORT_CHILD=1` (plus `env`), and returns its output. The child test must start with
/// `if !support::is_child() { return; }`.
pub fn run_child(name: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("GORT_CHILD", "1")
        .env_remove("RUST_BACKTRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("child test process runs")
}

/// Runs a child test (as `run_child`, no extra environment) that must end the process with a
/// `fatal error:` report (Go's exit status 2), and returns its stderr.
pub fn fatal_child(name: &str) -> String {
    let out = run_child(name, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{name}: stderr: {err}");
    err
}

/// Runs the calling test (named `name`) alone in a child process, so that what it measures of
/// the whole process (VmSize, RSS) sees no other test's runtimes and stacks. True in the
/// parent, which has checked that the child passed and must return; false in the child,
/// which runs the test's body. Use as `if support::alone("name") { return; }`.
pub fn alone(name: &str) -> bool {
    if is_child() {
        return false;
    }
    let out = run_child(name, &[]);
    assert!(
        out.status.success(),
        "{name} failed in its child process: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Starts `server` on a fresh loopback listener in a goroutine; returns its address.
#[cfg(feature = "http")]
pub fn serve(server: gort::http::Server) -> std::net::SocketAddr {
    let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    gort::go!(move || {
        let _ = server.serve(ln);
    });
    addr
}

/// Whether this process is a child started by `run_child`.
pub fn is_child() -> bool {
    std::env::var_os("GORT_CHILD").is_some()
}

/// Starts `n` goroutines that each count once, waits for them with a WaitGroup (which parks a
/// goroutine and blocks a plain thread), and returns the count.
pub fn fan_out(n: usize) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let wg = gort::WaitGroup::new();
    let hits = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        wg.add(1);
        let (wg, hits) = (wg.clone(), hits.clone());
        gort::go!(move || {
            hits.fetch_add(1, Ordering::Relaxed);
            wg.done();
        });
    }
    wg.wait();
    hits.load(Ordering::Relaxed)
}

/// A `/proc/self/status` field in KiB (`"VmRSS:"`, `"VmHWM:"`, `"VmSize:"`, `"VmPTE:"`).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Stress sizes scale with `GORT_STRESS` (default 1).
pub fn stress(n: usize) -> usize {
    let k: usize = std::env::var("GORT_STRESS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    n * k.max(1)
}

/// Defines `mod $name { p1, p4 }`: the body as a `#[gort::test]` at GOMAXPROCS 1 and 4.
macro_rules! rt_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$m])*
            #[gort::test(procs = 1)]
            fn p1() $body
            $(#[$m])*
            #[gort::test(procs = 4)]
            fn p4() $body
        }
    };
}

/// Runs `f` as `#[gort::test(procs = procs)]` would and checks that it ends in Go's deadlock
/// report, which `__private::test` re-raises as a panic in this thread. (`#[gort::test]`
/// tolerates the harness's own thread in its deadlock check, `gort::run` does not.)
pub fn expect_deadlock(procs: usize, f: impl FnOnce() + Send + 'static) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gort::__private::test(Some(procs), None, f)
    }));
    let p = r.expect_err("the deadlock is re-raised");
    assert_eq!(
        p.downcast_ref::<&str>(),
        Some(&"fatal error: all goroutines are asleep - deadlock!")
    );
}

/// A value computed from `id` and `i` that a zero page would not reproduce.
pub fn mix(id: u64, i: u64) -> u64 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)).rotate_left(17)
        | 1
}

/// One level of a recursion that keeps `W` words (`W` < 1,000) of its caller's frame filled
/// with values from `id` and `level`: fills them, runs `below` (the levels under it, or the
/// wait at the bottom), then checks every word, since a goroutine's stack must come back
/// intact across parks, copy-out, growth and thread changes. Returns `below`'s value plus the
/// words' sum. Inlined, so the words live in the caller's frame.
#[inline(always)]
pub fn hold<const W: usize>(id: u64, level: u64, below: impl FnOnce() -> u64) -> u64 {
    let mut local = [0u64; W];
    for (i, w) in local.iter_mut().enumerate() {
        *w = mix(id, i as u64 + level * 1000);
    }
    let local = std::hint::black_box(local);
    let mut sum = below();
    for (i, w) in local.iter().enumerate() {
        assert_eq!(
            *w,
            mix(id, i as u64 + level * 1000),
            "goroutine {id}: stack word {i} at level {level} changed"
        );
        sum = sum.wrapping_add(*w);
    }
    sum
}

/// What a recursion of `hold::<W>` over levels `0..=depth` returns when its bottom gives
/// `bottom`.
pub fn held_sum<const W: usize>(id: u64, depth: u64, bottom: u64) -> u64 {
    let mut sum = bottom;
    for level in 0..=depth {
        for i in 0..W as u64 {
            sum = sum.wrapping_add(mix(id, i + level * 1000));
        }
    }
    sum
}

/// Ends the test process with a message if it is still alive after `limit`: a bounded test
/// of something that hangs when broken (a starved goroutine). Dropping the guard disarms it.
pub struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

pub fn watchdog(limit: std::time::Duration, what: &'static str) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("watchdog: {what}: still not done after {limit:?}");
            std::process::exit(101);
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Receives from a 10 ms ticker for `window` and returns how many ticks came and the worst
/// gap between two (from the call's start for the first).
pub fn ticker_gaps(window: std::time::Duration) -> (usize, std::time::Duration) {
    use std::time::{Duration, Instant};
    let tick = gort::time::Ticker::new(Duration::from_millis(10));
    let mut last = Instant::now();
    let mut worst = Duration::ZERO;
    let mut ticks = 0;
    let end = Instant::now() + window;
    while Instant::now() < end {
        tick.chan().recv();
        let now = Instant::now();
        worst = worst.max(now - last);
        last = now;
        ticks += 1;
    }
    (ticks, worst)
}

/// A sleep of `d` that blocks the thread, inside `gort::blocking` if `marked`.
pub fn nap(d: std::time::Duration, marked: bool) {
    if marked {
        gort::blocking(|| std::thread::sleep(d));
    } else {
        std::thread::sleep(d);
    }
}
