//! Copy-out of parked goroutines' stacks (`sched/copyout.rs`): stack-resident data survives
//! copy-out and copy-in in any order and across threads, memory goes back to the kernel and
//! returns only for resumed goroutines, a goroutine readied while its copy-out runs resumes
//! intact, running goroutines are never touched, and overflow still gives Go's report.
//!
//! Sanitizer builds never copy out (ASan would report the copy reading its stack redzones),
//! so these tests are left out of them.
#![cfg(not(feature = "sanitizer"))]
mod support;

use support::{held_sum, hold, mix, status_kib};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::{Chan, WaitGroup};

/// More goroutines than copy-out's threshold (10,000).
const N: usize = 20_000;

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// The peak RSS: what the process held with every stack resident (copy-out starts while the
/// goroutines are still being made, so there is no single moment to measure "before").
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Fills a stack array (and, `depth` frames down, another), parks on `ch` at the bottom, and
/// checks every word after it resumes (`support::hold`). Returns the checksum of what it found.
#[inline(never)]
fn hold_and_park(id: u64, depth: u32, ch: &Chan<u64>) -> u64 {
    hold::<48>(id, depth as u64, || {
        if depth == 0 {
            ch.recv().expect("woken with a value")
        } else {
            hold_and_park(id, depth - 1, ch)
        }
    })
}

fn expected(id: u64, depth: u32, woken_with: u64) -> u64 {
    held_sum::<48>(id, depth as u64, woken_with)
}

/// Waits (bounded) until at least `n` stacks are out.
fn wait_copied_out(n: usize, limit: Duration) -> usize {
    let t = Instant::now();
    loop {
        let s = gort::debug::sched_stats();
        if s.stacks_copied_out >= n || t.elapsed() > limit {
            return s.stacks_copied_out;
        }
        gort::time::sleep(Duration::from_millis(20));
    }
}

/// A cheap deterministic shuffle.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// Touches about 64 KiB of stack below the caller (8 KiB with `small`), then returns: the
/// pages stay committed.
#[inline(never)]
fn touch_deep(small: bool) -> u64 {
    if small {
        touch::<{ 8 * 1024 }>()
    } else {
        touch::<{ 64 * 1024 }>()
    }
}

#[inline(never)]
fn touch<const B: usize>() -> u64 {
    let mut pad = [0u8; B];
    for i in (0..pad.len()).step_by(512) {
        pad[i] = i as u8;
    }
    std::hint::black_box(&mut pad)[100] as u64
}

#[test]
fn parked_stacks_are_copied_out_and_come_back_intact_in_random_order() {
    // Alone in a process: RSS is the process's.
    let out = support::run_child("copy_out_and_back_child", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

#[test]
fn copy_out_and_back_child() {
    if !support::is_child() {
        return;
    }
    // GORT_STRESS=50 makes it the million of the issue (a release build: debug frames are big).
    let n = support::stress(N);
    gort::Builder::new().procs(2).run(move || {
        let chans: Vec<Chan<u64>> = (0..n).map(|_| Chan::new(0)).collect();
        let results: Chan<(u64, u64)> = Chan::new(n);
        let started = WaitGroup::new();
        for (id, ch) in chans.iter().enumerate() {
            let (ch, results, started) = (ch.clone(), results.clone(), started.clone());
            started.add(1);
            gort::go!(move || {
                let id = id as u64;
                let depth = (id % 4) as u32;
                // Deep pages committed once and no longer used: copy-out gives them back.
                std::hint::black_box(touch_deep(n > 50_000));
                started.done();
                results.send((id, hold_and_park(id, depth, &ch)));
            });
        }
        started.wait();
        gort::time::sleep(Duration::from_millis(20)); // the last ones park
                                                      // Copy-out needs two passes a second apart: the page tables are still all there.
        let pte_before = status_kib("VmPTE:");
        let out = wait_copied_out(n * 9 / 10, Duration::from_secs(20 + n as u64 / 50_000));
        assert!(
            out >= n * 9 / 10,
            "only {out} of {n} parked stacks were copied out"
        );
        let (before, after) = (peak_rss_kib(), rss_kib());
        // Windows released whole, guard markers removed: most of their page-table pages go.
        let pte_after = status_kib("VmPTE:");
        eprintln!("VmPTE {pte_before} KiB -> {pte_after} KiB");
        assert!(
            pte_after < pte_before / 2,
            "page tables did not shrink after copy-out: VmPTE {pte_before} KiB -> {pte_after} KiB"
        );
        // Each window held 8 or 64 KiB and more of committed pages; the copies hold what was live
        // at the park (a few KiB in a debug build): the rest went back to the kernel.
        let stats = gort::debug::sched_stats();
        let copies_kib = stats.copied_out_bytes as u64 / 1024;
        assert!(
            after < before - before / 5,
            "RSS did not fall after copy-out: peak {before} KiB -> {after} KiB \
             ({} stacks out, {copies_kib} KiB of copies)",
            stats.stacks_copied_out
        );

        // Wake half in random order, from goroutines on both Ps; RSS rises only for them.
        let order = shuffled(n, 0x5eed);
        let (first, second) = order.split_at(n / 2);
        let wakers = WaitGroup::new();
        for part in first.chunks(n / 8) {
            let part = part.to_vec();
            let chans = chans.clone();
            wakers.add(1);
            let w = wakers.clone();
            gort::go!(move || {
                for i in part {
                    chans[i].send(i as u64 * 3);
                }
                w.done();
            });
        }
        wakers.wait();
        for _ in 0..n / 2 {
            let (id, sum) = results.recv().unwrap();
            assert_eq!(sum, expected(id, (id % 4) as u32, id * 3));
        }
        let s = gort::debug::sched_stats();
        let mid = rss_kib();
        // Only the resumed half came back: RSS stays below where it was before copy-out.
        assert!(
            mid < before,
            "RSS {mid} KiB after resuming half, {before} KiB before"
        );
        assert!(
            s.stacks_copied_out <= n - n / 2,
            "{} stacks still out after half were resumed",
            s.stacks_copied_out
        );
        // The other half, from this goroutine, in random order too.
        for &i in second {
            chans[i].send(i as u64 * 3);
        }
        for _ in 0..n - n / 2 {
            let (id, sum) = results.recv().unwrap();
            assert_eq!(sum, expected(id, (id % 4) as u32, id * 3));
        }
        let s = gort::debug::sched_stats();
        assert_eq!(s.stacks_copied_out, 0);
        assert_eq!(s.copied_out_bytes, 0);
        assert!(s.copy_outs as usize >= n * 9 / 10);
    });
}

/// Wake-ups land while passes copy stacks out: some goroutines are readied between the claim
/// and the copy, some during it, some right after. Each checks its stack when it runs, parks
/// again, and is woken again, for a bounded time.
#[test]
fn goroutines_readied_while_their_copy_out_runs_resume_intact() {
    gort::Builder::new().procs(2).run(|| {
        let chans: Vec<Chan<u64>> = (0..N).map(|_| Chan::new(1)).collect();
        let done = Arc::new(AtomicBool::new(false));
        let checked = Arc::new(AtomicU64::new(0));
        let wg = WaitGroup::new();
        for (id, ch) in chans.iter().enumerate() {
            let (ch, wg, checked) = (ch.clone(), wg.clone(), checked.clone());
            wg.add(1);
            gort::go!(move || {
                let id = id as u64;
                loop {
                    let v = hold_and_park(id, (id % 3) as u32, &ch);
                    if v == expected(id, (id % 3) as u32, u64::MAX) {
                        break; // the stop value
                    }
                    checked.fetch_add(1, Ordering::Relaxed);
                }
                wg.done();
            });
        }
        // A plain thread and a goroutine wake goroutines at random while passes run.
        let (c2, d2) = (chans.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut x = 7u64;
            while !d2.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let _ = c2[(x % N as u64) as usize].try_send(x);
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        let t = Instant::now();
        let mut x = 11u64;
        // About 20,000 wake-ups a second over 20,000 goroutines: a third stays parked through
        // a whole pass period and is copied out, and many of those are woken during a pass.
        while t.elapsed() < Duration::from_secs(4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let _ = chans[(x % N as u64) as usize].try_send(x);
            gort::time::sleep(Duration::from_micros(100));
        }
        done.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        let s = gort::debug::sched_stats();
        assert!(
            s.copy_outs > 0,
            "no stack was copied out while wake-ups ran"
        );
        for ch in &chans {
            ch.send(u64::MAX);
        }
        wg.wait();
        assert!(checked.load(Ordering::Relaxed) > 1000);
        eprintln!(
            "{} copy-outs, {} wake-ups checked",
            s.copy_outs,
            checked.load(Ordering::Relaxed)
        );
    });
}

/// Goroutines that compute (never park) are never copied out, however many are alive.
#[test]
fn running_goroutines_are_never_copied_out() {
    gort::Builder::new().procs(2).run(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let parked: Vec<Chan<()>> = (0..N).map(|_| Chan::new(0)).collect();
        for ch in &parked {
            let ch = ch.clone();
            gort::go!(move || {
                ch.recv();
            });
        }
        let wg = WaitGroup::new();
        for id in 0..2u64 {
            let (stop, wg) = (stop.clone(), wg.clone());
            wg.add(1);
            gort::go!(move || {
                let mut local = [0u64; 256];
                for (i, w) in local.iter_mut().enumerate() {
                    *w = mix(id, i as u64);
                }
                while !stop.load(Ordering::Relaxed) {
                    let l = std::hint::black_box(&mut local);
                    for (i, w) in l.iter().enumerate() {
                        assert_eq!(*w, mix(id, i as u64));
                    }
                    gort::yield_now(); // runnable, never parked
                }
                wg.done();
            });
        }
        wait_copied_out(N * 9 / 10, Duration::from_secs(20));
        gort::time::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        wg.wait();
        assert!(gort::debug::sched_stats().stacks_copied_out >= N * 9 / 10);
        for ch in &parked {
            ch.send(());
        }
    });
}

/// Below the threshold, or with copy-out turned off, nothing is copied.
#[test]
fn few_goroutines_or_copy_out_off_copy_nothing() {
    for (n, on) in [(2_000, true), (N, false)] {
        gort::Builder::new()
            .procs(2)
            .copy_out_parked(on)
            .run(move || {
                let chans: Vec<Chan<()>> = (0..n).map(|_| Chan::new(0)).collect();
                for ch in &chans {
                    let ch = ch.clone();
                    gort::go!(move || {
                        ch.recv();
                    });
                }
                // Long enough for two passes (copy-out needs a goroutine seen parked by two).
                gort::time::sleep(Duration::from_millis(2500));
                assert_eq!(gort::debug::sched_stats().copy_outs, 0);
                for ch in &chans {
                    ch.send(());
                }
            });
    }
}

/// `hold_and_park` through `#[gort::func]` frames of about 1 KiB, deep enough to park on a
/// growth segment (`sched/grow.rs`).
#[gort::func]
fn deep_hold_and_park(id: u64, depth: u32, ch: &Chan<u64>) -> u64 {
    hold::<120>(id, depth as u64, || {
        if depth == 0 {
            ch.recv().expect("woken with a value")
        } else {
            deep_hold_and_park(id, depth - 1, ch)
        }
    })
}

fn deep_expected(id: u64, depth: u32, woken_with: u64) -> u64 {
    held_sum::<120>(id, depth as u64, woken_with)
}

/// A goroutine parked on a growth segment is never copied out (its live stack is not the
/// top of its window); it stays resident beside goroutines that are, and resumes intact.
#[test]
fn goroutines_parked_on_growth_segments_stay_resident() {
    const DEEP: u64 = 8;
    gort::Builder::new().procs(2).run(|| {
        let wg = WaitGroup::new();
        let deep: Vec<Chan<u64>> = (0..DEEP).map(|_| Chan::new(0)).collect();
        for (id, ch) in deep.iter().enumerate() {
            let (ch, wg) = (ch.clone(), wg.clone());
            wg.add(1);
            gort::go!(move || {
                // About 1 MiB of frames: the bottom is on the second segment.
                let got = deep_hold_and_park(id as u64, 1024, &ch);
                assert_eq!(got, deep_expected(id as u64, 1024, 5));
                wg.done();
            });
        }
        let shallow: Vec<Chan<u64>> = (0..N).map(|_| Chan::new(0)).collect();
        for (id, ch) in shallow.iter().enumerate() {
            let (ch, wg) = (ch.clone(), wg.clone());
            wg.add(1);
            gort::go!(move || {
                let id = (id + 100) as u64;
                assert_eq!(hold_and_park(id, 1, &ch), expected(id, 1, 5));
                wg.done();
            });
        }
        assert!(gort::debug::sched_stats().stack_segments >= DEEP as usize);
        let out = wait_copied_out(N, Duration::from_secs(30));
        assert!(out >= N * 9 / 10, "only {out} of {N} copied out");
        // Two more passes: the deep goroutines have been parked as long as the others.
        gort::time::sleep(Duration::from_millis(2500));
        let s = gort::debug::sched_stats();
        // At most main besides the shallow goroutines (it sleeps in this loop).
        assert!(
            s.stacks_copied_out <= N + 1,
            "goroutines parked on segments were copied out: {s:?}"
        );
        for ch in deep.iter().chain(&shallow) {
            ch.send(5);
        }
        wg.wait();
    });
}

/// A goroutine that grew, came back to its window (keeping a spare segment) and parked gives
/// the spare back when its stack is copied out, and grows again after it resumes.
#[test]
fn copied_out_goroutines_give_back_their_spare_segments() {
    const DEEP: u64 = 8;
    gort::Builder::new().procs(2).run(|| {
        let wg = WaitGroup::new();
        let grown = WaitGroup::new();
        let deep: Vec<Chan<u64>> = (0..DEEP).map(|_| Chan::new(0)).collect();
        for (id, ch) in deep.iter().enumerate() {
            let (ch, wg, grown) = (ch.clone(), wg.clone(), grown.clone());
            wg.add(1);
            grown.add(1);
            gort::go!(move || {
                let id = id as u64;
                // Grow (about 1 MiB), come back, then park on the window.
                let c0 = Chan::new(1);
                c0.send(7);
                assert_eq!(
                    deep_hold_and_park(id, 1024, &c0),
                    deep_expected(id, 1024, 7)
                );
                grown.done();
                assert_eq!(hold_and_park(id, 1, &ch), expected(id, 1, 5));
                // And again after the copy-in.
                let c1 = Chan::new(1);
                c1.send(9);
                assert_eq!(
                    deep_hold_and_park(id, 1024, &c1),
                    deep_expected(id, 1024, 9)
                );
                wg.done();
            });
        }
        let shallow: Vec<Chan<u64>> = (0..N).map(|_| Chan::new(0)).collect();
        for (id, ch) in shallow.iter().enumerate() {
            let (ch, wg) = (ch.clone(), wg.clone());
            wg.add(1);
            gort::go!(move || {
                let id = (id + 100) as u64;
                assert_eq!(hold_and_park(id, 1, &ch), expected(id, 1, 5));
                wg.done();
            });
        }
        // Every deep goroutine grew and came back before the count (with mprotect guards,
        // kernels before 6.13, the segments' commits take a while).
        grown.wait();
        let held = gort::debug::sched_stats().stack_segments;
        assert!(
            held >= DEEP as usize,
            "each deep goroutine keeps a spare: {held}"
        );
        let out = wait_copied_out(N + DEEP as usize, Duration::from_secs(30));
        assert!(out >= N, "only {out} copied out");
        let s = gort::debug::sched_stats();
        assert_eq!(s.stack_segments, 0, "spares kept after copy-out: {s:?}");
        for ch in deep.iter().chain(&shallow) {
            ch.send(5);
        }
        wg.wait();
    });
}

#[test]
fn overflow_after_copy_out_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(2).run(|| {
        let chans: Vec<Chan<u32>> = (0..N).map(|_| Chan::new(0)).collect();
        for ch in &chans {
            let ch = ch.clone();
            gort::go!(move || {
                let n = ch.recv().unwrap();
                if n > 0 {
                    std::hint::black_box(recurse(n));
                }
            });
        }
        let out = wait_copied_out(N * 9 / 10, Duration::from_secs(20));
        assert!(out >= N * 9 / 10);
        // Adjacent windows were released in one call, guard pages included: they still guard.
        chans[N / 2].send(u32::MAX);
        gort::time::sleep(Duration::from_secs(5));
    });
    unreachable!("the overflow ends the process");
}

#[inline(never)]
fn recurse(n: u32) -> u64 {
    let pad = std::hint::black_box([n as u64; 64]);
    if n == 0 {
        return pad[0];
    }
    recurse(n - 1).wrapping_add(pad[3])
}

#[test]
fn overflow_after_copy_out_still_gives_go_report() {
    let err = support::fatal_child("overflow_after_copy_out_child");
    assert!(err.contains("fatal error: stack overflow"), "{err}");
    assert!(err.contains("goroutine stack exceeds"), "{err}");
}
