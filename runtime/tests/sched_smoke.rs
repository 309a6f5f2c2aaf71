use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn smoke() {
    let n = gort::Builder::new().procs(2).run(|| {
        let wg = gort::WaitGroup::new();
        let c = Arc::new(AtomicUsize::new(0));
        for _ in 0..10000 {
            wg.add(1);
            let (wg, c) = (wg.clone(), c.clone());
            gort::go!(move || {
                gort::yield_now();
                c.fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        c.load(Ordering::Relaxed)
    });
    assert_eq!(n, 10000);
}
