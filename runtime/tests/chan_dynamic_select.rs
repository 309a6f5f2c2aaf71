//! The dynamic select (`gort::Select`) through the public API: fairness over 1,000 channels
//! checked statistically, blocking until a run-time chosen case is ready, mixed sends and
//! receives, nil and closed channels, and a bounded stress where every value arrives once.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gort::{Chan, Select};

/// Pearson's chi-square statistic of `counts` against a uniform distribution.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

rt_test! {
    fn a_dynamic_select_over_1000_ready_channels_is_uniform() {
        // Every channel holds a value; each round takes one and refills it, so all 1,000
        // cases are ready every time and Go's rule (a uniformly random ready case) applies.
        const N: usize = 1000;
        const ROUNDS: usize = 10_000;
        let chans: Vec<Chan<usize>> = (0..N).map(|_| Chan::new(1)).collect();
        for (i, c) in chans.iter().enumerate() {
            c.send(i);
        }
        let mut counts = vec![0u64; N];
        for _ in 0..ROUNDS {
            let mut sel = Select::new();
            for c in &chans {
                sel.recv(c);
            }
            let op = sel.select();
            let i = op.index();
            assert_eq!(op.recv(&chans[i]), Some(i));
            counts[i] += 1;
            chans[i].send(i);
        }
        // 999 degrees of freedom: mean 999, standard deviation sqrt(2 * 999) ~ 44.7. A
        // uniform choice exceeds 999 + 7 sd (~1,312) with probability far below 1e-9; a
        // choice biased towards the first or last cases (source order, a skipped
        // shuffle step) lands in the tens of thousands.
        // (No "every case won at least once" check: with 10 wins expected per case, a fair
        // choice leaves some case without a win in about 4% of runs.)
        let x2 = chi_square(&counts);
        assert!(x2 < 1312.0, "chi-square {x2:.0} over {N} cases");
    }
}

rt_test! {
    fn a_dynamic_select_parks_until_the_chosen_channel_is_ready() {
        // None of 1,000 channels is ready; a goroutine sends on one chosen at random. The
        // select parks on all of them and wakes with exactly that one. Its sudogs must leave
        // the other queues before they are freed: a try_send on every channel walks them
        // (a sudog left behind would be freed memory there, and the run would crash).
        const N: usize = 1000;
        let chans: Vec<Chan<u64>> = (0..N).map(|_| Chan::new(0)).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let k = (seed % N as u64) as usize;
            let tx = chans[k].clone();
            gort::go!(move || tx.send(round));
            let mut sel = Select::new();
            for c in &chans {
                sel.recv(c);
            }
            let op = sel.select();
            assert_eq!(op.index(), k);
            assert_eq!(op.recv(&chans[k]), Some(round));
            for c in &chans {
                assert!(c.try_send(0).is_err(), "a stale waiter took a value");
            }
        }
    }
}

rt_test! {
    fn sends_and_receives_mix_and_unsent_values_are_dropped() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let full: Chan<Counted> = Chan::new(1);
        full.send(Counted(drops.clone())); // no room: its send case cannot win
        let ready: Chan<u8> = Chan::new(1);
        ready.send(3);
        let mut sel = Select::new();
        let s = sel.send(&full, Counted(drops.clone()));
        let r = sel.recv(&ready);
        let op = sel.select();
        assert_eq!((op.index(), op.is_recv()), (r, true));
        assert_ne!(op.index(), s);
        assert_eq!(op.recv(&ready), Some(3));
        // The unsent value was dropped with the select, exactly once.
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(full.recv());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }
}

rt_test! {
    fn try_select_is_the_default_case_and_nil_channels_never_win() {
        let nil: Chan<i32> = Chan::nil();
        let empty: Chan<i32> = Chan::new(0);
        let mut sel = Select::new();
        sel.recv(&nil);
        sel.send(&nil, 1);
        sel.recv(&empty);
        assert!(sel.try_select().is_none());
        assert!(Select::new().try_select().is_none());
        // A nil case beside a ready one: the ready one, every time.
        let ready: Chan<i32> = Chan::new(1);
        for _ in 0..100 {
            ready.send(1);
            let mut sel = Select::new();
            sel.recv(&nil);
            let i = sel.recv(&ready);
            sel.send(&nil, 2);
            assert_eq!(sel.select().index(), i);
            ready.try_recv().ok();
        }
    }
}

rt_test! {
    fn a_closed_channel_receives_none_and_a_send_on_it_panics() {
        let closed: Chan<String> = Chan::new(0);
        closed.close();
        let mut sel = Select::new();
        sel.recv(&closed);
        assert_eq!(sel.select().recv(&closed), None);

        let mut sel = Select::new();
        sel.send(&closed, "x".to_string());
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sel.select();
        }))
        .expect_err("send on closed channel");
        let msg = err
            .downcast_ref::<gort::RuntimeError>()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("send on closed channel"), "{msg}");
    }
}

rt_test! {
    fn a_blocked_send_case_is_woken_by_close_and_panics() {
        let ch: Chan<u8> = Chan::new(0);
        let closer = ch.clone();
        gort::go!(move || {
            gort::time::sleep(std::time::Duration::from_millis(5));
            closer.close();
        });
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sel = Select::new();
            sel.send(&ch, 1);
            sel.select();
        }))
        .expect_err("send on closed channel");
        assert!(err.downcast_ref::<gort::RuntimeError>().is_some());
    }
}

rt_test! {
    fn taking_the_value_through_the_wrong_channel_panics() {
        let a: Chan<u8> = Chan::new(1);
        let b: Chan<u8> = Chan::new(1);
        a.send(1);
        let mut sel = Select::new();
        sel.recv(&a);
        sel.recv(&b);
        let op = sel.select();
        assert_eq!(op.index(), 0);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.recv(&b)))
            .expect_err("wrong channel");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("not a receive from this channel"), "{msg}");
    }
}

rt_test! {
    fn every_value_from_many_producers_arrives_once_through_a_dynamic_select() {
        // 16 producers each send 500 values on random channels of 64; one collector selects
        // over the channels that are still open, and forwards nothing twice.
        const CHANS: usize = 64;
        const PRODUCERS: usize = 16;
        const PER: usize = 500;
        let chans: Vec<Chan<usize>> = (0..CHANS).map(|i| Chan::new(i % 3)).collect();
        let wg = gort::WaitGroup::new();
        for p in 0..PRODUCERS {
            let chans = chans.clone();
            wg.go(move || {
                let mut x = (p as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
                for k in 0..PER {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chans[(x % CHANS as u64) as usize].send(p * PER + k);
                }
            });
        }
        let closer = chans.clone();
        let wg2 = wg.clone();
        gort::go!(move || {
            wg2.wait();
            for c in &closer {
                c.close();
            }
        });
        let mut seen = vec![false; PRODUCERS * PER];
        let mut open: Vec<Chan<usize>> = chans;
        while !open.is_empty() {
            let mut sel = Select::new();
            for c in &open {
                sel.recv(c);
            }
            let op = sel.select();
            let i = op.index();
            match op.recv(&open[i]) {
                Some(v) => {
                    assert!(!seen[v], "value {v} received twice");
                    seen[v] = true;
                }
                None => {
                    open.swap_remove(i);
                }
            }
        }
        assert!(seen.iter().all(|&s| s), "a value was lost");
    }
}
