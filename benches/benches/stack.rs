//! Criterion: what stack growth costs (`runtime/src/sched/grow.rs`). A checked call with room
//! (the `#[gort::func]` prologue compare) against a plain call; a checked call that has to
//! switch onto the goroutine's spare segment (a call at a boundary, made in a loop: Go's old
//! "hot split"); and a goroutine that recurses 1 MiB deep on segments against one whose window
//! holds it.
//!
//! `cargo bench -p gort-benches --features peers --bench stack`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gort_benches::{dive, DEEP_LEVELS};

#[inline(never)]
fn plain_leaf(x: u64) -> u64 {
    black_box(x) + 1
}

#[gort::func]
#[inline(never)]
fn checked_leaf(x: u64) -> u64 {
    black_box(x) + 1
}

/// Uses about 1 KiB of stack per level, without checks, then makes `iters` checked calls.
#[inline(never)]
fn at_depth(levels: u32, iters: u64) -> Duration {
    let pad = black_box([levels as u64; 128]);
    if levels > 0 {
        let took = at_depth(levels - 1, iters);
        black_box(&pad);
        return took;
    }
    let t = Instant::now();
    for i in 0..iters {
        black_box(checked_leaf(i));
    }
    t.elapsed()
}

/// `f(iters)` in a goroutine with a 64 KiB window (red zone 16 KiB).
fn in_small_goroutine(iters: u64, f: fn(u64) -> Duration) -> Duration {
    gort::Builder::new().procs(1).run(move || {
        gort::GoBuilder::new()
            .stack_size(64 * 1024)
            .spawn(move || f(iters))
            .join()
    })
}

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack");
    g.bench_function("plain_call", |b| {
        b.iter_custom(|n| {
            in_small_goroutine(n, |n| {
                let t = Instant::now();
                for i in 0..n {
                    black_box(plain_leaf(i));
                }
                t.elapsed()
            })
        })
    });
    g.bench_function("checked_call_with_room", |b| {
        b.iter_custom(|n| in_small_goroutine(n, |n| at_depth(0, n)))
    });
    g.bench_function("checked_call_at_boundary", |b| {
        b.iter_custom(|n| {
            in_small_goroutine(n, |n| {
                let before = gort::debug::sched_stats().stack_growths;
                // About 52 KiB of 64: less than the 16 KiB red zone is left.
                let took = at_depth(52, n);
                let taken = gort::debug::sched_stats().stack_growths - before;
                assert_eq!(taken, 1, "every call after the first reuses the spare");
                took
            })
        })
    });
    g.finish();
}

/// `n` goroutines, one after another, each recursing 1 MiB through checked frames; `window`
/// is their window size.
fn deep_goroutines(n: u64, window: usize) -> Duration {
    gort::Builder::new().procs(1).run(move || {
        let t = Instant::now();
        for _ in 0..n {
            let h = gort::GoBuilder::new()
                .stack_size(window)
                .spawn(|| dive(DEEP_LEVELS));
            black_box(h.join());
        }
        t.elapsed()
    })
}

fn deep(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack");
    g.bench_function("deep_1mib_on_segments", |b| {
        b.iter_custom(|n| deep_goroutines(n, 256 * 1024))
    });
    g.bench_function("deep_1mib_in_a_2mib_window", |b| {
        b.iter_custom(|n| deep_goroutines(n, 2 << 20))
    });
    g.finish();
}

criterion_group!(benches, calls, deep);
criterion_main!(benches);
