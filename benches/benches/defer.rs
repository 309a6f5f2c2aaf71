//! Criterion: what `defer!` adds to a call, and panic + recover against Rust's own
//! `panic!` + `catch_unwind` (the floor) in the same run.
//!
//! `cargo bench -p gort-benches --bench defer`

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gort_benches::defers;

/// `iters` calls of `f` inside a goroutine (where gort's frames and hook are in force).
fn in_goroutine(f: fn(&Cell<u64>), iters: u64) -> Duration {
    gort::Builder::new().procs(1).run(move || {
        let x = Cell::new(0);
        let t = Instant::now();
        for _ in 0..iters {
            f(black_box(&x));
        }
        t.elapsed()
    })
}

/// Rust's floor, on this plain thread, before any runtime has installed gort's hook.
fn floor(c: &mut Criterion) {
    // With RUST_BACKTRACE set every panic captures a backtrace (std's hook would too), which
    // is what would be measured. Cleared before anything reads it (std caches the answer).
    std::env::remove_var("RUST_BACKTRACE");
    std::env::remove_var("RUST_LIB_BACKTRACE");
    std::panic::set_hook(Box::new(|_| {}));
    let mut g = c.benchmark_group("panic");
    g.bench_function("rust_panic_catch_unwind", |b| {
        let x = Cell::new(0);
        b.iter(|| defers::bare_unwind(black_box(&x)))
    });
    g.finish();
}

fn defer_and_recover(c: &mut Criterion) {
    let mut g = c.benchmark_group("defer");
    g.bench_function("call_without_defer", |b| {
        b.iter_custom(|n| in_goroutine(defers::no_defer, n))
    });
    g.bench_function("open_coded", |b| {
        b.iter_custom(|n| in_goroutine(defers::open_defer, n))
    });
    g.bench_function("defer_list", |b| {
        b.iter_custom(|n| in_goroutine(defers::list_defer, n))
    });
    g.finish();
    let mut g = c.benchmark_group("panic");
    g.bench_function("gort_panic_recover", |b| {
        b.iter_custom(|n| in_goroutine(defers::panic_recover, n))
    });
    g.finish();
}

criterion_group!(benches, floor, defer_and_recover);
criterion_main!(benches);
