//! Criterion: starting goroutines. Each measurement runs inside a gort runtime
//! (`iter_custom` times the loop in goroutine 1, so runtime start-up is not counted).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

fn done(wg: gort::WaitGroup) {
    wg.done();
}

fn in_runtime(procs: usize, iters: u64, f: fn(u64) -> Duration) -> Duration {
    gort::Builder::new().procs(procs).run(move || f(iters))
}

/// go! + WaitGroup::done, waited for in batches of 1000 (pooled records and stacks).
fn spawn_batch(iters: u64) -> Duration {
    let t = Instant::now();
    let mut left = iters;
    while left > 0 {
        let k = left.min(1000);
        let wg = gort::WaitGroup::new();
        for _ in 0..k {
            wg.add(1);
            gort::go!(done(wg.clone()));
        }
        wg.wait();
        left -= k;
    }
    t.elapsed()
}

/// One goroutine at a time, started and joined: a pooled stack, a pooled record.
fn spawn_join(iters: u64) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        assert_eq!(gort::spawn(move || i).join(), i);
    }
    t.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn");
    for procs in [1, 2] {
        g.bench_function(format!("go_waitgroup/P={procs}"), |b| {
            b.iter_custom(|n| in_runtime(procs, n, spawn_batch))
        });
    }
    g.bench_function("spawn_join_pooled_stack/P=1", |b| {
        b.iter_custom(|n| in_runtime(1, n, spawn_join))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
