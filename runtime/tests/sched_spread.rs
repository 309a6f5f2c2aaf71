//! Work spreads over all Ps: one goroutine spawns CPU-bound goroutines, and every M runs its
//! share (counted per M thread). Kept in its own test binary so no other test competes for
//! the two cores.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn spin(d: Duration) {
    let t = Instant::now();
    let mut x = 1u64;
    while t.elapsed() < d {
        for _ in 0..100 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

#[gort::test(procs = 2)]
fn cpu_bound_goroutines_spread_over_both_ms() {
    let per_m: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let wg = gort::WaitGroup::new();
    let n = 2000;
    for _ in 0..n {
        wg.add(1);
        let (wg, per_m) = (wg.clone(), per_m.clone());
        gort::go!(move || {
            spin(Duration::from_micros(50));
            let name = std::thread::current().name().unwrap_or("?").to_string();
            *per_m.lock().unwrap().entry(name).or_default() += 1;
            wg.done();
        });
    }
    wg.wait();
    let per_m = per_m.lock().unwrap();
    assert_eq!(per_m.values().sum::<usize>(), n);
    // Both Ps ran a share. Counted per thread: a P may move to a third M when sysmon takes
    // it from one that sat in the kernel (a page fault, a guard-page carve), so the check is
    // that no thread ran the lion's share, not that exactly two threads ran any.
    assert!(
        per_m.len() >= 2,
        "at least two Ms ran goroutines: {per_m:?}"
    );
    let most = per_m.values().copied().max().unwrap_or(0);
    assert!(most <= n * 3 / 4, "one M ran {most} of {n}: {per_m:?}");
}
