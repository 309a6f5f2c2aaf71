//! Stack growth past the window (`sched/grow.rs`): recursion through `#[gort::func]` frames and
//! `gort::maybe_grow` goes far deeper than a goroutine's window without configuration, panics
//! and Goexit unwind across segments running every deferred call, goroutines park on segments
//! and resume intact on other threads, a call at a segment boundary in a loop reuses its
//! segment, segments go back to the pool, and the limit gives Go's report and exit 2.

mod support;

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::{Chan, WaitGroup};
use support::{held_sum, hold};

/// ASan's redzones make frames several times larger; depths shrink there.
const SCALE: u64 = if cfg!(feature = "sanitizer") { 4 } else { 1 };

/// 16 MiB of frames (about 1 KiB a level): 64 times the default window, 8 times a spawned std
/// thread's stack.
const DEEP: u64 = 16 * 1024 / SCALE;

/// Recursion through `#[gort::func]` frames with about 1 KiB of stack each.
#[gort::func]
fn dive(n: u64) -> u64 {
    let pad = black_box([n; 128]);
    if n == 0 {
        return pad[0];
    }
    dive(n - 1) + pad[1]
}

/// The same recursion as a plain function that asks for growth itself.
fn dive_plain(n: u64) -> u64 {
    let pad = black_box([n; 128]);
    if n == 0 {
        return pad[0];
    }
    gort::maybe_grow(|| dive_plain(n - 1)) + pad[1]
}

fn sum_to(n: u64) -> u64 {
    (0..=n).sum()
}

/// Waits (bounded) until no goroutine holds a segment: a goroutine's segments go back when
/// its M ends it, a moment after its `join` returned.
fn wait_segments_released() -> usize {
    let t = Instant::now();
    loop {
        let held = gort::debug::sched_stats().stack_segments;
        if held == 0 || t.elapsed() > Duration::from_secs(10) {
            return held;
        }
        gort::time::sleep(Duration::from_millis(1));
    }
}

#[gort::test(procs = 2)]
fn func_recursion_goes_far_past_the_window() {
    let before = gort::debug::sched_stats().stack_growths;
    let h = gort::spawn(|| dive(DEEP));
    assert_eq!(h.join(), sum_to(DEEP));
    let s = gort::debug::sched_stats();
    assert!(s.stack_growths > before, "no segment was taken: {s:?}");
    // Doubling segments: a handful, not one per level.
    assert!(s.stack_growths - before < 12, "{s:?}");
    assert_eq!(
        wait_segments_released(),
        0,
        "segments outlived their goroutine"
    );
    // Goroutine 1 (an 8 MiB window) grows too.
    assert_eq!(dive(DEEP * 2), sum_to(DEEP * 2));
}

#[gort::test(procs = 2)]
fn maybe_grow_takes_plain_recursion_far_past_the_window() {
    let hs: Vec<_> = (0..4).map(|_| gort::spawn(|| dive_plain(DEEP))).collect();
    for h in hs {
        assert_eq!(h.join(), sum_to(DEEP));
    }
    assert_eq!(wait_segments_released(), 0);
}

#[test]
fn maybe_grow_outside_a_goroutine_just_calls() {
    // A plain thread has no stack guard: the closure runs where it is.
    assert_eq!(gort::maybe_grow(|| 7), 7);
    assert_eq!(dive(10), sum_to(10));
    // Also on a thread that ran goroutines (`gort::run` makes the caller's thread an M for a
    // while): its guard is cleared when it stops running them.
    assert_eq!(
        gort::Builder::new().procs(1).run(|| dive(DEEP)),
        sum_to(DEEP)
    );
    assert_eq!(dive(10), sum_to(10));
    assert_eq!(gort::maybe_grow(|| 8), 8);
}

// Signatures the growth wrapper (a closure around the frame) must keep compiling, with the
// same meaning: borrows returned from arguments (elided and named lifetimes, `&mut self`),
// early `return`, `?`, `impl Trait`, generics, `self` by value, diverging functions.
struct Holder {
    v: Vec<u8>,
}

impl Holder {
    #[gort::func]
    fn first_mut(&mut self) -> &mut u8 {
        &mut self.v[0]
    }

    #[gort::func]
    fn into_len(self) -> usize {
        self.v.len()
    }
}

#[gort::func]
fn pick<'a>(a: &'a mut [u8], b: &'a mut [u8], first: bool) -> &'a mut u8 {
    if first {
        return &mut a[0];
    }
    &mut b[0]
}

#[gort::func]
fn parse_sum(xs: &[&str]) -> Result<i64, std::num::ParseIntError> {
    let mut s = 0;
    for x in xs {
        s += x.parse::<i64>()?;
    }
    Ok(s)
}

#[gort::func]
fn evens(n: u32) -> impl Iterator<Item = u32> {
    (0..n).filter(|x| x % 2 == 0)
}

#[gort::func]
fn largest<T: PartialOrd + Copy>(xs: &[T]) -> Option<T> {
    let mut it = xs.iter().copied();
    let mut m = it.next()?;
    for x in it {
        if x > m {
            m = x;
        }
    }
    Some(m)
}

#[gort::func]
fn never(msg: &str) -> ! {
    panic!("{msg}")
}

/// Return types with elided lifetimes whose bodies need the declared type to coerce.
struct Parts {
    n: u32,
    s: String,
    arr: [u8; 3],
    e: std::io::Error,
}

impl Parts {
    #[gort::func]
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.e)
    }

    #[gort::func]
    fn shown(&self, num: bool) -> &dyn std::fmt::Display {
        if num {
            &self.n
        } else {
            &self.s
        }
    }

    #[gort::func]
    fn bytes(&self, some: bool) -> &[u8] {
        if some {
            &self.arr
        } else {
            &[]
        }
    }

    #[gort::func]
    fn boxed(&self, num: bool) -> Box<dyn std::fmt::Display + '_> {
        if num {
            return Box::new(self.n);
        }
        Box::new(&self.s)
    }
}

/// The same shapes with a `defer!` (the frame's body closure needs the type as well).
impl Parts {
    #[gort::func]
    fn shown_deferred(&self, num: bool, log: &Cell<u32>) -> &dyn std::fmt::Display {
        defer!(log.set(log.get() + 1));
        if num {
            return &self.n;
        }
        &self.s
    }

    #[gort::func]
    fn bytes_deferred(&self, some: bool, log: &Cell<u32>) -> &[u8] {
        defer!(log.set(log.get() + 1));
        if some {
            &self.arr
        } else {
            &[]
        }
    }
}

#[gort::func]
#[track_caller]
fn caller_line() -> u32 {
    std::panic::Location::caller().line()
}

#[gort::test]
fn checked_signatures_keep_their_meaning() {
    let p = Parts {
        n: 4,
        s: "four".into(),
        arr: [1, 2, 3],
        e: std::io::Error::other("e"),
    };
    assert!(p.source().is_some());
    assert_eq!(format!("{} {}", p.shown(true), p.shown(false)), "4 four");
    assert_eq!((p.bytes(true).len(), p.bytes(false).len()), (3, 0));
    assert_eq!(format!("{} {}", p.boxed(true), p.boxed(false)), "4 four");
    let log = Cell::new(0);
    assert_eq!(
        format!(
            "{} {}",
            p.shown_deferred(true, &log),
            p.shown_deferred(false, &log)
        ),
        "4 four"
    );
    assert_eq!(p.bytes_deferred(false, &log).len(), 0);
    assert_eq!(log.get(), 3);
    let (line, here) = (caller_line(), line!());
    assert_eq!(line, here, "#[track_caller] still names the caller");
    let mut h = Holder { v: vec![1, 2] };
    *h.first_mut() += 10;
    assert_eq!(h.v[0], 11);
    assert_eq!(h.into_len(), 2);
    let (mut a, mut b) = (vec![1], vec![2]);
    *pick(&mut a, &mut b, false) += 5;
    *pick(&mut a, &mut b, true) += 1;
    assert_eq!((a[0], b[0]), (2, 7));
    assert_eq!(parse_sum(&["1", "2"]), Ok(3));
    assert!(parse_sum(&["1", "x"]).is_err());
    assert_eq!(evens(7).collect::<Vec<_>>(), [0, 2, 4, 6]);
    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest::<u8>(&[]), None);
    let r = std::panic::catch_unwind(|| never("gone"));
    assert!(r.is_err());
}

/// Deferred calls count themselves on the way up; the bottom panics.
#[gort::func]
fn dive_and_panic(n: u64, ran: &Cell<u64>) -> u64 {
    defer!(|| ran.set(ran.get() + 1));
    let pad = black_box([n; 128]);
    if n == 0 {
        panic!("bottom of {}", pad[0]);
    }
    dive_and_panic(n - 1, ran) + pad[1]
}

#[gort::func]
fn catch_deep_panic(n: u64, ran: &Cell<u64>) -> Option<String> {
    defer!(|r| {
        if let Some(p) = gort::recover() {
            r.set(Some(p.to_string()));
        }
    });
    dive_and_panic(n, ran);
    None
}

#[gort::test(procs = 2)]
fn a_panic_unwinds_across_segments_and_runs_every_deferred_call() {
    let h = gort::spawn(|| {
        let ran = Cell::new(0);
        let got = catch_deep_panic(DEEP, &ran);
        // Back on the window: a second deep dive grows again from there.
        let again = dive(DEEP);
        (got, ran.get(), again)
    });
    let (got, ran, again) = h.join();
    assert_eq!(got.as_deref(), Some("bottom of 0"));
    assert_eq!(ran, DEEP + 1, "every level's deferred call ran");
    assert_eq!(again, sum_to(DEEP));
    assert_eq!(wait_segments_released(), 0);
}

#[gort::func]
fn dive_and_goexit(n: u64, ran: &AtomicU64) {
    defer!(ran.fetch_add(1, Ordering::Relaxed));
    let pad = black_box([n; 128]);
    if n == 0 {
        gort::goexit();
    }
    dive_and_goexit(n - 1, ran);
    black_box(pad);
}

#[gort::test(procs = 2)]
fn goexit_across_segments_runs_every_deferred_call() {
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    let done: Chan<()> = Chan::new(0);
    let d = done.clone();
    gort::go!(move || {
        defer!(d.close());
        dive_and_goexit(DEEP, &r);
        unreachable!("Goexit does not return");
    });
    assert_eq!(done.recv(), None);
    assert_eq!(ran.load(Ordering::Relaxed), DEEP + 1);
    assert_eq!(wait_segments_released(), 0);
}

/// Fills each level's frame with values from `id` (`support::hold`), parks at the bottom
/// (yielding on the way down, so the goroutine changes threads), and checks every level on
/// the way up.
#[gort::func]
fn dive_and_park(id: u64, n: u64, ch: &Chan<u64>) -> u64 {
    hold::<96>(id, n, || {
        if n % 256 == 0 {
            gort::yield_now();
        }
        if n == 0 {
            ch.recv().expect("woken with a value")
        } else {
            dive_and_park(id, n - 1, ch)
        }
    })
}

fn expected_park_sum(id: u64, n: u64, woken_with: u64) -> u64 {
    held_sum::<96>(id, n, woken_with)
}

#[gort::test(procs = 4)]
fn goroutines_park_on_segments_and_resume_intact_on_other_threads() {
    const G: u64 = 16;
    let depth = 4 * 1024 / SCALE; // about 4 MiB each
    let chans: Vec<Chan<u64>> = (0..G).map(|_| Chan::new(0)).collect();
    let sums = Arc::new(AtomicU64::new(0));
    let wg = WaitGroup::new();
    for (id, ch) in chans.iter().enumerate() {
        let (ch, wg, sums) = (ch.clone(), wg.clone(), sums.clone());
        wg.add(1);
        gort::go!(move || {
            let id = id as u64;
            let got = dive_and_park(id, depth, &ch);
            assert_eq!(got, expected_park_sum(id, depth, id * 7 + 1));
            sums.fetch_add(1, Ordering::Relaxed);
            wg.done();
        });
    }
    // Every goroutine is at its bottom, deep in its segments, once its send goes through.
    for (id, ch) in chans.iter().enumerate().rev() {
        ch.send(id as u64 * 7 + 1);
    }
    wg.wait();
    assert_eq!(sums.load(Ordering::Relaxed), G);
    assert_eq!(wait_segments_released(), 0);
}

/// A leaf frame: the checked call made at every level.
#[gort::func]
fn leaf(x: u64) -> u64 {
    black_box(x) + 1
}

#[gort::func]
fn dive_calling_leaves(n: u64) -> u64 {
    let pad = black_box([n; 128]);
    let mut s = 0;
    for i in 0..16 {
        s += leaf(i);
    }
    if n == 0 {
        return s + pad[0];
    }
    dive_calling_leaves(n - 1) + s + pad[1]
}

#[gort::test(procs = 1)]
fn calls_at_a_segment_boundary_reuse_the_spare() {
    // Levels near each boundary call `leaf` with less than the red zone left, so each call
    // switches to the next segment: thousands of switches. Taking a segment from the pool is
    // counted; the spare kept after each return makes the rest free.
    let before = gort::debug::sched_stats().stack_growths;
    let n = DEEP / 2;
    let h = gort::spawn(move || dive_calling_leaves(n));
    assert_eq!(h.join(), sum_to(n) + (n + 1) * (1..=16).sum::<u64>());
    let taken = gort::debug::sched_stats().stack_growths - before;
    assert!(taken < 16, "{taken} segments taken from the pool");
}

#[test]
fn limit_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(2).run(|| {
        gort::debug::set_max_stack(4 << 20);
        let h = gort::spawn(|| dive(u64::MAX));
        h.join();
    });
    unreachable!("the overflow ends the process");
}

#[test]
fn recursion_past_the_limit_gives_go_report_and_exit_2() {
    let err = support::fatal_child("limit_child");
    assert!(
        err.contains("runtime: goroutine stack exceeds 4194304-byte limit"),
        "{err}"
    );
    assert!(
        err.contains("runtime: raise it with gort::debug::set_max_stack"),
        "{err}"
    );
    assert!(err.contains("fatal error: stack overflow"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("goroutine ") && l.ends_with(" [running]:")),
        "{err}"
    );
}

#[test]
fn default_limit_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(1).run(|| {
        let h = gort::spawn(|| dive(u64::MAX));
        h.join();
    });
    unreachable!("the overflow ends the process");
}

/// Go's own words for an infinite recursion: the 1 GB limit. Segments double up to 512 MiB
/// (about 512 MiB of frames, touched once, in this test's child process).
#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan's shadow of half a gigabyte of frames"
)]
fn infinite_recursion_hits_go_limit() {
    let err = support::fatal_child("default_limit_child");
    assert!(
        err.contains("runtime: goroutine stack exceeds 1000000000-byte limit"),
        "{err}"
    );
    assert!(err.contains("fatal error: stack overflow"), "{err}");
}

/// Recurses `n` levels through checked frames, each holding words it checks on the way up
/// (`support::hold`); `rng` picks what a level does before it goes down: wait for the driver
/// (a receive), yield, panic and recover a level down, or nothing.
#[gort::func]
fn wander(id: u64, n: u64, rng: u64, ch: &Chan<u64>) -> u64 {
    hold::<96>(id ^ rng, n, || {
        match rng % 23 {
            0 => {
                ch.recv()
                    .expect("the driver sends until every goroutine is done");
            }
            1 => gort::yield_now(),
            2 => {
                let _ = recover_from(|| panic!("level {n}"));
            }
            _ => {}
        }
        if n == 0 {
            0
        } else {
            let next = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            wander(id, n - 1, next >> 1, ch)
        }
    })
}

#[gort::func]
fn recover_from(f: impl FnOnce()) -> bool {
    defer!(|| {
        gort::recover();
    });
    f();
    false
}

/// Goroutines grow, park on segments and on their windows, yield, recover panics at random
/// depths and return, for a few seconds, at P=2, beside 12,000 parked goroutines that make
/// copy-out run (goroutines back on their windows with a spare segment are copied out too).
#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan's frames; minutes instead of seconds"
)]
fn growth_under_parking_copy_out_and_migration() {
    gort::Builder::new().procs(2).run(|| {
        let idle: Vec<Chan<()>> = (0..12_000).map(|_| Chan::new(0)).collect();
        for c in &idle {
            let c = c.clone();
            gort::go!(move || {
                c.recv();
            });
        }
        const G: u64 = 48;
        let ch: Chan<u64> = Chan::new(0);
        let rounds = Arc::new(AtomicU64::new(0));
        let wg = WaitGroup::new();
        let stop_at = Instant::now() + Duration::from_secs(4);
        for id in 0..G {
            let (ch, wg, rounds) = (ch.clone(), wg.clone(), rounds.clone());
            wg.add(1);
            gort::go!(move || {
                let mut rng = id * 7919 + 1;
                while Instant::now() < stop_at {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Up to about 3 MiB deep.
                    let depth = (rng >> 33) % (3 * 1024 / SCALE);
                    black_box(wander(id, depth, rng >> 7, &ch));
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
                wg.done();
            });
        }
        // The driver: wakes whoever waits, until every goroutine is done.
        let done: Chan<()> = Chan::new(0);
        let d = done.clone();
        gort::go!(move || {
            wg.wait();
            d.close();
        });
        let mut woken = 0u64;
        loop {
            gort::select! {
                send(ch, woken) => woken += 1,
                recv(done) -> _ => break,
            }
        }
        let s = gort::debug::sched_stats();
        eprintln!(
            "{} dives, {woken} wake-ups, {} segments taken, {} copy-outs",
            rounds.load(Ordering::Relaxed),
            s.stack_growths,
            s.copy_outs
        );
        assert!(rounds.load(Ordering::Relaxed) >= G);
        assert!(s.stack_growths > 0);
        for c in &idle {
            c.close();
        }
        assert_eq!(wait_segments_released(), 0);
    });
}
