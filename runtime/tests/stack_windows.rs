//! Goroutine stacks: deep recursion, overflow reports, many parked goroutines.

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Uses about 1 KiB of stack per level.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = black_box([n; 128]);
    if n == 0 {
        pad[0]
    } else {
        recurse(n - 1) + pad[1]
    }
}

#[gort::test(procs = 2)]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan's redzones make frames several times larger"
)]
fn deep_recursion_inside_a_window_works() {
    let frame = recurse_frame();
    // About 75% of the default 256 KiB window.
    let depth = (192 * 1024 / frame) as u64;
    assert!(depth > 40, "frame of {frame} bytes");
    assert_eq!(recurse(depth), (0..=depth).sum::<u64>());
    // A goroutine with a bigger window goes deeper.
    let deep = depth * 30;
    let h = gort::GoBuilder::new()
        .stack_size(8 << 20)
        .spawn(move || recurse(deep));
    assert_eq!(h.join(), (0..=deep).sum::<u64>());
    // Windows are reused: many goroutines each going deep, one after another.
    for _ in 0..50 {
        assert_eq!(
            gort::spawn(move || recurse(depth)).join(),
            (0..=depth).sum::<u64>()
        );
    }
}

#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan's redzones make frames several times larger"
)]
fn goroutine_one_reaches_as_deep_as_the_main_thread() {
    // 6 MiB of frames: deeper than a spawned std thread (2 MiB) and a default goroutine
    // (256 KiB), within the main thread's 8 MiB that goroutine 1 stands in for.
    let depth = (6 * 1024 * 1024 / recurse_frame()) as u64;
    let want = (0..=depth).sum::<u64>();
    assert_eq!(
        gort::Builder::new().procs(2).run(move || recurse(depth)),
        want
    );
    // A smaller runtime stack size leaves goroutine 1 at 8 MiB ...
    let small = gort::Builder::new().procs(1).stack_size(64 * 1024);
    assert_eq!(small.run(move || recurse(depth)), want);
    // ... and a larger one applies to goroutine 1 too.
    let deeper = depth * 2;
    let big = gort::Builder::new().procs(1).stack_size(16 << 20);
    assert_eq!(big.run(move || recurse(deeper)), (0..=deeper).sum::<u64>());
}

#[test]
fn main_overflow_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(1).run(|| recurse(1_000_000_000));
    unreachable!("the overflow ends the process");
}

#[test]
fn goroutine_one_overflow_reports_its_8_mib_limit() {
    let err = support::fatal_child("main_overflow_child");
    assert!(
        err.contains(&format!(
            "runtime: goroutine stack exceeds {}-byte limit",
            gort::MAIN_STACK_SIZE
        )),
        "{err}"
    );
    assert!(err.contains("goroutine 1 [running]:"), "{err}");
}

/// Bytes per level of `recurse`, measured with its own frame layout.
fn recurse_frame() -> usize {
    #[inline(never)]
    fn probe(n: u64, addrs: &mut Vec<usize>) -> u64 {
        let pad = black_box([n; 128]);
        addrs.push(pad.as_ptr() as usize);
        if n == 0 {
            pad[0]
        } else {
            probe(n - 1, addrs) + pad[1]
        }
    }
    let mut v = Vec::new();
    probe(2, &mut v);
    (v[0] - v[2]) / 2 + 64
}

#[test]
fn overflow_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(2).stack_size(64 * 1024).run(|| {
        let h = gort::spawn(|| recurse(1_000_000));
        h.join();
    });
    unreachable!("the overflow ends the process");
}

#[test]
fn stack_overflow_prints_go_report_and_exits_2() {
    let err = support::fatal_child("overflow_child");
    assert!(
        err.contains("runtime: goroutine stack exceeds 65536-byte limit"),
        "{err}"
    );
    assert!(err.contains("fatal error: stack overflow"), "{err}");
    assert!(
        err.contains("runtime: raise it with gort::Builder::stack_size"),
        "the report says how to raise the limit: {err}"
    );
    let header = err
        .lines()
        .find(|l| l.starts_with("goroutine ") && l.ends_with(" [running]:"))
        .unwrap_or_else(|| panic!("a goroutine header: {err}"));
    let id: u64 = header
        .trim_start_matches("goroutine ")
        .trim_end_matches(" [running]:")
        .parse()
        .expect("a goroutine id");
    assert!(id > 1, "the overflowing goroutine is not main: {header}");
    // Its entry function and where it was started (issue 22: the report ended at the header).
    assert!(
        err.contains("\tstack_windows::overflow_child::{{closure}}::{{closure}}(...)"),
        "the entry function: {err}"
    );
    assert!(
        err.contains("created by goroutine 1\n\truntime/tests/stack_windows.rs:114:"),
        "the creation site: {err}"
    );
}

#[test]
fn overflow_in_a_go_call_child() {
    if !support::is_child() {
        return;
    }
    gort::Builder::new().procs(1).stack_size(64 * 1024).run(|| {
        gort::go!(recurse(1_000_000));
        gort::time::sleep(std::time::Duration::from_secs(10));
    });
}

#[test]
fn a_stack_overflow_report_names_the_function_go_started() {
    let err = support::fatal_child("overflow_in_a_go_call_child");
    assert!(err.contains("\tstack_windows::recurse(...)"), "{err}");
    assert!(
        err.contains("created by goroutine 1\n\truntime/tests/stack_windows.rs:"),
        "{err}"
    );
}

#[test]
fn overflow_outside_goroutines_is_left_to_std_child() {
    if !support::is_child() {
        return;
    }
    // A runtime exists (its handler is installed), but this overflow is on a plain thread:
    // the handler must pass it on to std's, which reports it as a thread overflow.
    gort::Builder::new().procs(1).run(|| ());
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| recurse(1_000_000))
        .unwrap()
        .join()
        .unwrap();
}

#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan installs its own SIGSEGV handler"
)]
fn overflow_of_a_plain_thread_still_reaches_std() {
    let out = support::run_child("overflow_outside_goroutines_is_left_to_std_child", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("fatal error: stack overflow"), "{err}");
    assert!(
        err.contains("has overflowed its stack"),
        "std's report: {err}"
    );
    assert_ne!(out.status.code(), Some(0));
}

fn park_many(n: usize) {
    gort::Builder::new().procs(2).run(move || {
        let started = gort::WaitGroup::new();
        let gate = gort::WaitGroup::new();
        let finished = Arc::new(AtomicUsize::new(0));
        gate.add(1);
        for _ in 0..n {
            started.add(1);
            let (s, g, f) = (started.clone(), gate.clone(), finished.clone());
            gort::go!(move || {
                s.done();
                g.wait();
                f.fetch_add(1, Ordering::Relaxed);
            });
        }
        started.wait();
        assert_eq!(gort::num_goroutine(), n + 1, "all parked at once");
        gate.done();
        while gort::num_goroutine() != 1 {
            gort::yield_now();
        }
        assert_eq!(finished.load(Ordering::Relaxed), n);
    });
}

#[test]
fn hundred_thousand_parked_goroutines() {
    park_many(support::stress(100_000));
}

#[test]
#[ignore = "1M goroutines need ~5 GiB and a minute in debug builds; run with --ignored --release"]
fn million_parked_goroutines() {
    park_many(1_000_000);
}

/// Memory maps of 1 GiB or more: gort's stack segments (16 GiB of address space each, less
/// under an address-space limit). The allocator's heaps (64 MiB) and thread stacks come and
/// go with the threads a burst starts, and are not counted.
fn big_maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
            let size = usize::from_str_radix(hi, 16).ok()? - usize::from_str_radix(lo, 16).ok()?;
            (size >= 1 << 30).then_some(())
        })
        .count()
}

#[test]
fn burst_leaves_nothing_mapped_child() {
    if !support::is_child() {
        return;
    }
    // A first runtime warms up what stays for the process (the allocator's per-thread
    // arenas, std's thread bookkeeping), then the burst is measured against it.
    park_many(1_000);
    let (maps, vm) = (big_maps(), support::status_kib("VmSize:"));
    for _ in 0..2 {
        park_many(support::stress(200_000));
    }
    let (maps2, vm2) = (big_maps(), support::status_kib("VmSize:"));
    // Segments are unmapped when a runtime ends.
    assert_eq!(maps2, maps, "stack segments left mapped after the bursts");
    // A segment is 16 GiB of address space; the allocator keeps some of its heaps mapped
    // after millions of records (about 1.7 GiB after two bursts of 2M), which is not gort's.
    assert!(
        vm2 < vm + (8 << 20),
        "VmSize {vm} KiB -> {vm2} KiB after the bursts: stack segments left mapped"
    );
}

/// A burst of goroutines (400,000 in two runtimes; GORT_STRESS=10 for the 2M in a
/// release build) leaves no stack segment mapped and the address space where it was.
#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan maps big shadow regions, and sanitizer builds keep discarded stacks mapped"
)]
fn a_burst_of_goroutines_leaves_nothing_mapped() {
    let out = support::run_child("burst_leaves_nothing_mapped_child", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}
