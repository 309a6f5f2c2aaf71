//! The fast unwinder (docs/defer-panic-recover.md, "The fast unwinder") against libgcc's own:
//! the same drops and deferred calls in the same order, the same values caught and recovered,
//! through chains of 1..200 frames of mixed shapes, and a hand-over to libgcc wherever a frame
//! is not a plain Rust frame of the executable (here: a C frame with a cleanup, in a shared
//! object built by the test).
//!
//! The scenarios run in child processes, one with the fast path on and one with
//! `GORT_UNWIND=libgcc`; each prints its event log, and the two logs must be equal.

mod support;

use std::cell::RefCell;
use std::hint::black_box;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// What happened, in order.
type Log = RefCell<Vec<String>>;

fn note(log: &Log, s: String) {
    log.borrow_mut().push(s);
}

/// Logs its id when dropped (a frame with a `Drop`).
struct Guard<'a>(&'a Log, usize);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        note(self.0, format!("drop {}", self.1));
    }
}

/// A tiny deterministic generator for the frame shapes.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

const SHAPES: u64 = 10;

/// Frame `at` of the chain `shapes`; the last frame panics. Returns a value when a frame on
/// the way stopped the panic.
#[inline(never)]
fn frame(shapes: &[u8], at: usize, log: &Log) -> u64 {
    let Some(&shape) = shapes.get(at) else {
        if at % 2 == 0 {
            panic!("bottom {at}");
        }
        std::panic::panic_any(at as u64);
    };
    let below = |log: &Log| frame(shapes, at + 1, log);
    match shape {
        // A plain frame with nothing to clean up.
        0 => black_box(below(log)) + 1,
        // A frame with a Drop.
        1 => {
            let _g = Guard(log, at);
            below(log) + 1
        }
        // A Go-style function with a deferred call.
        2 => deferred(shapes, at, log),
        // A generic frame.
        3 => generic::<u32>(shapes, at, log, 3),
        // A closure frame.
        4 => {
            let f: &dyn Fn(&Log) -> u64 = &|log| {
                let _g = Guard(log, at);
                below(log) * 2
            };
            black_box(f)(log)
        }
        // catch_unwind in the middle, which re-raises what it caught.
        5 => match catch_unwind(AssertUnwindSafe(|| below(log))) {
            Ok(v) => v,
            Err(p) => {
                note(log, format!("caught and re-raised at {at}"));
                resume_unwind(p)
            }
        },
        // catch_unwind in the middle, which stops the panic.
        6 => match catch_unwind(AssertUnwindSafe(|| below(log))) {
            Ok(v) => v,
            Err(p) => {
                note(log, format!("stopped at {at}: {}", describe(&*p)));
                1000 + at as u64
            }
        },
        // A large frame.
        7 => {
            let mut big = [0u8; 16 << 10];
            black_box(&mut big);
            let _g = Guard(log, at);
            below(log) + u64::from(black_box(&big)[at % big.len()])
        }
        // An over-aligned local: the frame is addressed from rbp.
        8 => aligned(shapes, at, log),
        // A Go-style function that recovers.
        _ => recovering(shapes, at, log),
    }
}

#[gort::func]
#[inline(never)]
fn deferred(shapes: &[u8], at: usize, log: &Log) -> u64 {
    defer!(note(log, format!("defer {at}")));
    frame(shapes, at + 1, log) + 1
}

#[gort::func]
#[inline(never)]
fn recovering(shapes: &[u8], at: usize, log: &Log) -> u64 {
    defer!(|| {
        if let Some(p) = gort::recover() {
            note(log, format!("recovered at {at}: {p}"));
        }
    });
    frame(shapes, at + 1, log) + 1
}

#[inline(never)]
fn generic<T: From<u8> + Into<u64> + Copy>(shapes: &[u8], at: usize, log: &Log, k: u8) -> u64 {
    let t = black_box(T::from(k));
    let _g = Guard(log, at);
    frame(shapes, at + 1, log) + t.into()
}

#[repr(align(64))]
struct Aligned([u64; 8]);

#[inline(never)]
fn aligned(shapes: &[u8], at: usize, log: &Log) -> u64 {
    let a = Aligned([at as u64; 8]);
    black_box(&a);
    let _g = Guard(log, at);
    frame(shapes, at + 1, log) + black_box(&a).0[7]
}

fn describe(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else if let Some(n) = p.downcast_ref::<u64>() {
        format!("u64 {n}")
    } else if let Some(p) = p.downcast_ref::<gort::Panic>() {
        format!("gort panic {p}")
    } else {
        "?".into()
    }
}

/// Runs scenario `seed`: a chain of 1..=200 frames of mixed shapes, and returns its log.
fn scenario(seed: u64) -> Vec<String> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = 1 + (next(&mut s) % 200) as usize;
    // Stopping shapes (6, 9) are rare, so that most panics travel the whole chain.
    let shapes: Vec<u8> = (0..len)
        .map(|_| {
            let k = next(&mut s) % (SHAPES * 4);
            match k {
                6 | 9 => k as u8,
                k if k >= SHAPES => [0, 1, 2, 3, 4, 5, 7, 8][(k % 8) as usize],
                k => k as u8,
            }
        })
        .collect();
    let log = Log::default();
    match catch_unwind(AssertUnwindSafe(|| frame(&shapes, 0, &log))) {
        Ok(v) => note(&log, format!("returned {v}")),
        Err(p) => note(&log, format!("reached the top: {}", describe(&*p))),
    }
    log.into_inner()
}

/// The child: runs the scenarios in a goroutine and prints their logs and the unwinder's
/// counters.
#[test]
fn scenarios_child() {
    if !support::is_child() {
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
    gort::Builder::new().procs(1).run(|| {
        let before = gort::debug::unwind_stats();
        println!(); // after libtest's "test scenarios_child ... "
        for seed in 0..300 {
            println!("log {seed}: {}", scenario(seed).join("; "));
        }
        let after = gort::debug::unwind_stats();
        println!(
            "stats: fast_path={} fast={} handed_over={}",
            after.fast_path,
            after.fast - before.fast,
            after.handed_over - before.handed_over
        );
    });
}

fn stats_line(out: &str) -> &str {
    out.lines().find(|l| l.starts_with("stats:")).unwrap_or("")
}

fn logs(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("log ")).collect()
}

#[test]
fn the_fast_path_drops_and_recovers_as_libgcc_does() {
    if support::is_child() {
        return;
    }
    // (Any other value than `libgcc` leaves the fast path on, whatever this process has.)
    let fast = support::run_child("scenarios_child", &[("GORT_UNWIND", "fast")]);
    let slow = support::run_child("scenarios_child", &[("GORT_UNWIND", "libgcc")]);
    for out in [&fast, &slow] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (fast, slow) = (
        String::from_utf8_lossy(&fast.stdout).into_owned(),
        String::from_utf8_lossy(&slow.stdout).into_owned(),
    );
    let (f, s) = (logs(&fast), logs(&slow));
    assert_eq!(f.len(), 300);
    assert_eq!(s.len(), 300);
    for (a, b) in f.iter().zip(&s) {
        assert_eq!(a, b, "the fast path and libgcc disagree");
    }
    let drops: usize = f.iter().map(|l| l.matches("drop ").count()).sum();
    assert!(drops > 1000, "{drops} drops");
    let defers: usize = f.iter().map(|l| l.matches("defer ").count()).sum();
    assert!(defers > 100, "{defers} deferred calls");
    assert!(f.iter().any(|l| l.contains("recovered at")));
    assert!(f.iter().any(|l| l.contains("stopped at")));
    assert!(f.iter().any(|l| l.contains("reached the top")));
    // With the fast path on, every panic of these pure-Rust chains took it.
    let on = stats_line(&fast);
    if cfg!(all(
        target_arch = "x86_64",
        target_os = "linux",
        target_env = "gnu",
        not(feature = "sanitizer")
    )) {
        assert!(on.starts_with("stats: fast_path=true fast="), "{on}");
        assert!(on.ends_with(" handed_over=0"), "{on}");
        assert!(!on.contains(" fast=0 "), "{on}");
    }
    // Forced off, none did.
    let off = stats_line(&slow);
    assert_eq!(off, "stats: fast_path=false fast=0 handed_over=0");
}

/// A C function with a cleanup (`__attribute__((cleanup))`, built with `-fexceptions`) that
/// calls back into Rust, in a shared object: the panic from the callback must be handed to
/// libgcc, which runs the C cleanup and the Rust drops on both sides.
const C_SOURCE: &str = r#"
static int cleanups;
static void count(int *unused) { (void)unused; cleanups++; }
void gort_test_c_call(void (*cb)(void *), void *arg) {
    int guard __attribute__((cleanup(count))) = 0;
    cb(arg);
    (void)guard;
}
int gort_test_c_cleanups(void) { return cleanups; }
"#;

type CCall = unsafe extern "C-unwind" fn(extern "C-unwind" fn(*mut u8), *mut u8);

extern "C-unwind" fn callback(log: *mut u8) {
    // SAFETY: `log` is the Log `through_c` passes.
    let log = unsafe { &*log.cast::<Log>() };
    let _g = Guard(log, 2);
    panic!("from the callback");
}

#[inline(never)]
fn through_c(call: CCall, log: &Log) {
    let _g = Guard(log, 1);
    // SAFETY: `call` is gort_test_c_call, and `log` outlives the call.
    unsafe { call(callback, (log as *const Log).cast_mut().cast()) };
}

#[test]
fn a_c_frame_in_a_shared_object_goes_to_libgcc() {
    // In a child: the counters are the process's, and other tests here panic too.
    if !support::is_child() {
        let out = support::run_child(
            "a_c_frame_in_a_shared_object_goes_to_libgcc",
            &[("GORT_UNWIND", "fast")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("gort-unwind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, lib) = (dir.join("c_frame.c"), dir.join("libc_frame.so"));
    std::fs::write(&src, C_SOURCE).unwrap();
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-fexceptions", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) runs");
    assert!(built.success());
    let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: dlopen/dlsym with valid C strings; the symbols have the declared types.
    let (call, cleanups) = unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
        assert!(!h.is_null(), "dlopen failed");
        let call = libc::dlsym(h, c"gort_test_c_call".as_ptr());
        let cleanups = libc::dlsym(h, c"gort_test_c_cleanups".as_ptr());
        assert!(!call.is_null() && !cleanups.is_null());
        (
            std::mem::transmute::<*mut libc::c_void, CCall>(call),
            std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> i32>(cleanups),
        )
    };
    let _ = std::fs::remove_dir_all(&dir);
    gort::Builder::new().procs(1).run(move || {
        let log = Log::default();
        let before = gort::debug::unwind_stats();
        let r = catch_unwind(AssertUnwindSafe(|| through_c(call, &log)));
        let after = gort::debug::unwind_stats();
        let p = r.expect_err("the panic comes through the C frame");
        assert_eq!(describe(&*p), "from the callback");
        assert_eq!(cleanups(), 1, "libgcc ran the C frame's cleanup");
        assert_eq!(log.into_inner(), ["drop 2", "drop 1"]);
        if after.fast_path {
            assert!(after.handed_over > before.handed_over, "{after:?}");
        }
        // A pure-Rust panic right after still takes the fast path.
        let r = catch_unwind(|| resume_unwind(Box::new(7u8)));
        assert!(r.is_err());
        let last = gort::debug::unwind_stats();
        if last.fast_path {
            assert_eq!(last.fast, after.fast + 1, "{last:?}");
        }
    });
}

/// Many goroutines panicking and recovering at once on two processors: the cache is filled
/// and read concurrently, and every panic lands where it should.
#[test]
fn concurrent_panics_fill_and_share_the_cache() {
    gort::Builder::new().procs(2).run(|| {
        let wg = gort::WaitGroup::new();
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        for g in 0..16u64 {
            wg.add(1);
            let (w, total) = (wg.clone(), total.clone());
            gort::go!(move || {
                for i in 0..200 {
                    let log = Log::default();
                    let shapes: Vec<u8> = (0..(g + i) % 24).map(|k| (k % 9) as u8).collect();
                    let r = catch_unwind(AssertUnwindSafe(|| frame(&shapes, 0, &log)));
                    let drops = log
                        .borrow()
                        .iter()
                        .filter(|l| l.starts_with("drop"))
                        .count();
                    let want = shapes
                        .iter()
                        .take_while(|&&s| s != 6)
                        .filter(|&&s| matches!(s, 1 | 3 | 4 | 7 | 8))
                        .count();
                    assert!(r.is_ok() || drops == want, "{drops} drops, want {want}");
                    total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i % 16 == 0 {
                        gort::yield_now();
                    }
                }
                w.done();
            });
        }
        wg.wait();
        assert_eq!(total.load(std::sync::atomic::Ordering::Relaxed), 16 * 200);
    });
}
