//! Criterion: switching between goroutines (yield, the park/ready hand-off).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

/// Two goroutines yielding to each other on one P; time per yield.
fn yield_pair(iters: u64) -> Duration {
    gort::Builder::new().procs(1).run(move || {
        let t = Instant::now();
        let h = gort::spawn(move || {
            for _ in 0..iters {
                gort::yield_now();
            }
        });
        for _ in 0..iters {
            gort::yield_now();
        }
        h.join();
        t.elapsed() / 2
    })
}

/// A goroutine parks on a WaitGroup and another readies it: one park + ready per iteration.
fn park_ready(iters: u64) -> Duration {
    gort::Builder::new().procs(1).run(move || {
        let t = Instant::now();
        for _ in 0..iters {
            let wg = gort::WaitGroup::new();
            wg.add(1);
            let w = wg.clone();
            gort::go!(move || w.done());
            wg.wait();
        }
        t.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch");
    g.bench_function("yield/P=1", |b| b.iter_custom(yield_pair));
    g.bench_function("spawn_park_ready/P=1", |b| b.iter_custom(park_ready));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
