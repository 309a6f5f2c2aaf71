//! Goroutine stacks on kernels before Linux 6.13 (no `MADV_GUARD_INSTALL`), where guard pages
//! are `mprotect` islands and each committed window costs about two memory maps
//! (docs/stacks.md, "The map budget"): a million parked goroutines resume intact, a burst of a
//! million spawned goroutines comes and goes, copy-out and copy-in race under map pressure,
//! recursion through segments survives windows being released around it, the maps stay within
//! the budget (the kernel never refuses one, and at each quiet point the committed windows
//! explain them) and return to baseline after a burst, and the true limit is a clear fatal
//! error.
//!
//! Each test runs in a child process that the kernel treats as an older one: a seccomp filter
//! installed before `exec` fails `madvise`/`process_madvise` with advice 102/103
//! (`MADV_GUARD_INSTALL`/`REMOVE`) with EINVAL, as kernels before 6.13 do, and with
//! `before_5_10` fails `process_madvise` and `pidfd_open` with ENOSYS, as 5.4 does. It is the
//! filter of the project's `no_guard_madvise` tool (`.ci/run` also runs these tests under the
//! tool itself): the real fallback path, not a switch of gort's own. Each child checks that
//! gort did take the fallback.
//!
//! Sanitizer builds never copy out, so there is no relief from the budget: left out there.
#![cfg(all(target_arch = "x86_64", not(feature = "sanitizer")))]
mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::{Chan, WaitGroup};
use support::{held_sum, hold, is_child};

// ---------------------------------------------------------------------------------------------
// The old kernel: a seccomp filter, as `no_guard_madvise` installs it.

const SYS_MADVISE: u32 = 28;
const SYS_PIDFD_OPEN: u32 = 434;
const SYS_PROCESS_MADVISE: u32 = 440;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: guard advice fails with EINVAL (kernels before 6.13); with `before_5_10`,
/// `process_madvise` and `pidfd_open` fail with ENOSYS (5.4).
fn old_kernel_filter(before_5_10: bool) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
        SECCOMP_RET_ERRNO,
    };
    let ld = (BPF_LD | BPF_W | BPF_ABS) as u16;
    let jeq = (BPF_JMP | BPF_JEQ | BPF_K) as u16;
    let ret = (BPF_RET | BPF_K) as u16;
    // seccomp_data: nr at 0, arch at 4, args at 16 + 8 * i (low 32 bits on little-endian).
    let allow = stmt(ret, SECCOMP_RET_ALLOW);
    let einval = stmt(ret, SECCOMP_RET_ERRNO | libc::EINVAL as u32);
    let enosys = stmt(ret, SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    let mut f = vec![
        stmt(ld, 4),
        jump(jeq, AUDIT_ARCH_X86_64, 1, 0),
        allow, // another architecture's calls: not ours to judge
        stmt(ld, 0),
    ];
    if before_5_10 {
        f.push(jump(jeq, SYS_PROCESS_MADVISE, 0, 1));
        f.push(enosys);
        f.push(jump(jeq, SYS_PIDFD_OPEN, 0, 1));
        f.push(enosys);
    }
    f.extend([
        // madvise(addr, len, advice): advice is args[2]
        jump(jeq, SYS_MADVISE, 0, 4),
        stmt(ld, 16 + 8 * 2),
        jump(jeq, 102, 7, 0),
        jump(jeq, 103, 6, 0),
        allow,
        // process_madvise(pidfd, iov, n, advice, flags): advice is args[3]
        jump(jeq, SYS_PROCESS_MADVISE, 0, 3),
        stmt(ld, 16 + 8 * 3),
        jump(jeq, 102, 2, 0),
        jump(jeq, 103, 1, 0),
        allow,
        einval,
    ]);
    f
}

/// Runs the child test `name` as on a kernel without `MADV_GUARD_INSTALL` (and, with
/// `before_5_10`, without `process_madvise`/`pidfd_open`); asserts it passed.
fn run_old_kernel(name: &str, before_5_10: bool, procs: usize) {
    let out = old_kernel_child(name, before_5_10, procs);
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} (before_5_10: {before_5_10}, P={procs}): {:?}\nstdout: {stdout}\nstderr: {err}",
        out.status
    );
}

/// Runs the child test `name` on the old kernel (`run_old_kernel`) and returns its output.
fn old_kernel_child(name: &str, before_5_10: bool, procs: usize) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary path");
    let filter = old_kernel_filter(before_5_10);
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("GORT_CHILD", "1")
        .env("OLD_KERNEL_PROCS", procs.to_string())
        .env_remove("RUST_BACKTRACE");
    // SAFETY: the closure makes two prctl calls (async-signal-safe) on data built before the
    // fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("child test process runs")
}

fn child_procs() -> usize {
    std::env::var("OLD_KERNEL_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

// ---------------------------------------------------------------------------------------------
// What the children measure.

/// Lines of `/proc/self/maps`: the memory maps of the process.
fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .count()
}

/// The process holds about two maps per committed window, and the budget keeps those under
/// `vm.max_map_count` with 8,192 to spare: past the limit the kernel would refuse maps to
/// everyone, and gort would end the process with a fatal error, which fails the test. Here,
/// at a moment when the goroutines are parked, the maps must be what the committed windows
/// explain (released ones merged back) and the committed windows within the budget.
/// (`/proc/self/maps` is read in pieces, no snapshot: while windows are committed above the
/// reader and released below it, one read counts some twice, so no sampling thread measures
/// the peak exactly; the slack covers what moves during a read at a quiet moment.)
fn assert_maps_within_budget() {
    let before = gort::debug::sched_stats();
    let now = maps();
    let s = gort::debug::sched_stats();
    assert!(
        s.mprotect_guards,
        "the child must run on the mprotect fallback"
    );
    assert!(
        s.committed_stacks <= s.stack_map_budget,
        "committed windows over the budget: {s:?}"
    );
    let committed = before.committed_stacks.max(s.committed_stacks);
    assert!(
        now <= 2 * committed + 4_096,
        "{now} maps for {committed} committed windows: released windows do not merge back"
    );
    let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(65_530);
    assert!(now < max, "{now} maps: vm.max_map_count is {max}");
}

/// Waits (bounded) until the maps are back within `slack` of `baseline`; returns the count.
fn wait_maps_back(baseline: usize, slack: usize, limit: Duration) -> usize {
    let t = Instant::now();
    loop {
        let n = maps();
        if n <= baseline + slack || t.elapsed() > limit {
            return n;
        }
        gort::time::sleep(Duration::from_millis(50));
    }
}

/// Parks on `ch` inside a frame holding 16 words from `id` (`support::hold`), checks them
/// after it resumes, and returns the checksum.
#[inline(never)]
fn hold_and_park(id: u64, ch: &Chan<u64>) -> u64 {
    hold::<16>(id, 0, || ch.recv().expect("woken with a value"))
}

/// The value goroutine `id` of `park_holders` is woken with.
fn wake_value(id: u64) -> u64 {
    id ^ 7
}

/// Starts `n` goroutines, ids `base..base + n`, that each park in `hold_and_park` on a channel
/// of their own (buffer `cap`), and after they are woken with `wake_value(id)` check every
/// word of their frame and count themselves in `checked`. `started` counts each in once it
/// runs, `done` out at its end. Returns the channels, in id order.
fn park_holders(
    n: usize,
    base: u64,
    cap: usize,
    started: &WaitGroup,
    done: &WaitGroup,
    checked: &Arc<AtomicUsize>,
) -> Vec<Chan<u64>> {
    let chans: Vec<Chan<u64>> = (0..n).map(|_| Chan::new(cap)).collect();
    for (i, ch) in chans.iter().enumerate() {
        started.add(1);
        done.add(1);
        let (ch, started, done, checked) =
            (ch.clone(), started.clone(), done.clone(), checked.clone());
        let id = base + i as u64;
        gort::go!(move || {
            started.done();
            let got = hold_and_park(id, &ch);
            assert_eq!(got, held_sum::<16>(id, 0, wake_value(id)), "goroutine {id}");
            checked.fetch_add(1, Ordering::Relaxed);
            done.done();
        });
    }
    chans
}

// ---------------------------------------------------------------------------------------------
// 1. A million parked goroutines, then all resumed with their stacks intact.

const MILLION: usize = 1_000_000;

#[test]
fn million_parked_resume_intact() {
    for before_5_10 in [false, true] {
        run_old_kernel("child_million_parked", before_5_10, 2);
    }
}

#[test]
fn child_million_parked() {
    if !is_child() {
        return;
    }
    gort::Builder::new().procs(child_procs()).run(|| {
        let (started, done) = (WaitGroup::new(), WaitGroup::new());
        let sum = Arc::new(AtomicUsize::new(0));
        let chans = park_holders(MILLION, 0, 0, &started, &done, &sum);
        started.wait();
        assert_maps_within_budget();
        let s = gort::debug::sched_stats();
        assert!(
            s.stacks_copied_out + s.stack_map_budget >= MILLION,
            "parked goroutines beyond the budget are copied out: {s:?}"
        );
        // Wake them in an order unlike the spawn order, so that copy-ins and the copy-outs
        // that make room for them interleave across the whole range.
        for (i, ch) in chans.iter().enumerate().rev() {
            ch.send(wake_value(i as u64));
        }
        done.wait();
        assert_eq!(sum.load(Ordering::Relaxed), MILLION);
        assert_maps_within_budget();
    });
}

// ---------------------------------------------------------------------------------------------
// 2. A burst of a million goroutines that park, then exit: maps and pool come back.

#[test]
fn burst_parks_exits_and_maps_return() {
    for before_5_10 in [false, true] {
        run_old_kernel("child_burst", before_5_10, 2);
    }
}

#[test]
fn child_burst() {
    if !is_child() {
        return;
    }
    gort::Builder::new().procs(child_procs()).run(|| {
        let baseline = maps();
        for round in 0..2u64 {
            let gate: Chan<()> = Chan::new(0);
            let parked = WaitGroup::new();
            let done = WaitGroup::new();
            for id in 0..MILLION as u64 {
                parked.add(1);
                done.add(1);
                let (gate, parked, done) = (gate.clone(), parked.clone(), done.clone());
                gort::go!(move || {
                    let key = id + round * MILLION as u64;
                    let got = hold::<8>(key, 0, || {
                        parked.done();
                        gate.recv(); // closed: every receiver wakes
                        id
                    });
                    assert_eq!(got, held_sum::<8>(key, 0, id));
                    done.done();
                });
            }
            parked.wait();
            assert_maps_within_budget();
            gate.close();
            done.wait();
        }
        assert_maps_within_budget();
        // The scavenger releases the windows nobody took for a whole period (1 s): in old
        // kernels they go back to PROT_NONE and merge, so the maps return to about where the
        // runtime started.
        let after = wait_maps_back(baseline, 512, Duration::from_secs(20));
        let s = gort::debug::sched_stats();
        assert!(
            after <= baseline + 512,
            "{after} maps 20 s after the bursts, {baseline} before: {s:?}"
        );
        assert!(s.committed_stacks < 2_000, "committed windows left: {s:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Copy-out and copy-in racing under map pressure, at P=2 and P=4, with checksums.

#[test]
fn copy_out_and_in_race_under_pressure() {
    for procs in [2, 4] {
        run_old_kernel("child_race", false, procs);
    }
    run_old_kernel("child_race", true, 2);
}

#[test]
fn child_race() {
    if !is_child() {
        return;
    }
    // More live goroutines than the budget holds committed windows: every wake-up needs room.
    const N: usize = 40_000;
    const ROUNDS: u64 = 4;
    gort::Builder::new().procs(child_procs()).run(|| {
        let done = WaitGroup::new();
        let bad = Arc::new(AtomicUsize::new(0));
        let chans: Vec<Chan<u64>> = (0..N).map(|_| Chan::new(1)).collect();
        for (id, ch) in chans.iter().enumerate() {
            done.add(1);
            let (ch, done, bad) = (ch.clone(), done.clone(), bad.clone());
            gort::go!(move || {
                let id = id as u64;
                for r in 0..ROUNDS {
                    let key = id + r * N as u64;
                    let got = hold::<24>(key, 0, || ch.recv().expect("a value"));
                    if got != held_sum::<24>(key, 0, id + r) {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done.done();
            });
        }
        // Feed the rounds in a shuffled order from two goroutines at once, so wake-ups meet
        // copy-outs (relief and sysmon's) on every M.
        let feeders = WaitGroup::new();
        for half in 0..2usize {
            feeders.add(1);
            let (chans, feeders) = (chans.clone(), feeders.clone());
            gort::go!(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ half as u64;
                for r in 0..ROUNDS {
                    let mut order: Vec<usize> = (half..N).step_by(2).collect();
                    for i in (1..order.len()).rev() {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        order.swap(i, (x % (i as u64 + 1)) as usize);
                    }
                    for i in order {
                        chans[i].send(i as u64 + r);
                    }
                }
                feeders.done();
            });
        }
        feeders.wait();
        done.wait();
        assert_eq!(bad.load(Ordering::Relaxed), 0, "stacks came back changed");
        assert_maps_within_budget();
    });
}

// ---------------------------------------------------------------------------------------------
// 3b. Runnable goroutines hold every committed window while copied-out ones wait to resume.

#[test]
fn runnable_goroutines_holding_the_budget_do_not_stall_the_rest() {
    run_old_kernel("child_runnable_hold", false, 1);
    run_old_kernel("child_runnable_hold", false, 2);
}

#[test]
fn child_runnable_hold() {
    if !is_child() {
        return;
    }
    // 1. Goroutines that park, more than the budget: the first ones are copied out to make
    //    room for the later ones.
    // 2. Hogs: runnable goroutines that yield until told to end, started until the budget
    //    has only a few hundred windows left.
    // 3. Every parked goroutine is woken, then the hogs are told to end. The copied-out ones
    //    need a window to resume, and only the hogs hold windows: an M that waited for room
    //    holding its processor (P=1: the only one) would wait until sysmon handed the
    //    processor on, or its patience ran out and it ended the process. It turns the
    //    goroutine away and runs the others instead.
    const PARKED: usize = 40_000;
    gort::Builder::new().procs(child_procs()).run(|| {
        let (started, done) = (WaitGroup::new(), WaitGroup::new());
        let checked = Arc::new(AtomicUsize::new(0));
        let chans = park_holders(PARKED, 0, 1, &started, &done, &checked);
        started.wait();
        // Let every parked goroutine finish parking (park functions run after the switch).
        gort::time::sleep(Duration::from_millis(20));
        let s = gort::debug::sched_stats();
        assert!(s.stacks_copied_out > 0, "copied out to make room: {s:?}");
        // The hogs take nearly the whole budget: the parked goroutines are copied out for them.
        let hogs = s.stack_map_budget - 200;
        let hogs_started = WaitGroup::new();
        let go_on = Arc::new(AtomicUsize::new(0));
        for _ in 0..hogs {
            done.add(1);
            hogs_started.add(1);
            let (done, hogs_started, go_on) = (done.clone(), hogs_started.clone(), go_on.clone());
            gort::go!(move || {
                hogs_started.done();
                while go_on.load(Ordering::Relaxed) == 0 {
                    gort::yield_now();
                }
                done.done();
            });
        }
        // The hogs start and begin yielding.
        hogs_started.wait();
        for (i, ch) in chans.iter().enumerate() {
            ch.send(wake_value(i as u64)); // buffered: main does not yield here
        }
        go_on.store(1, Ordering::Relaxed);
        done.wait();
        assert_eq!(checked.load(Ordering::Relaxed), PARKED);
        assert_maps_within_budget();
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Recursion through segments while parked windows are released around it.

/// Recurses `depth` levels through checked frames (each 4 KiB of words), parks at the bottom,
/// and checks every frame on the way back.
#[gort::func]
fn dive_and_park(id: u64, depth: u64, ch: &Chan<u64>) -> u64 {
    hold::<512>(id, depth, || {
        if depth == 0 {
            ch.recv().expect("woken")
        } else {
            dive_and_park(id, depth - 1, ch)
        }
    })
}

#[test]
fn recursion_through_segments_under_pressure() {
    run_old_kernel("child_segments", false, 2);
    run_old_kernel("child_segments", true, 2);
}

#[test]
fn child_segments() {
    if !is_child() {
        return;
    }
    const DIVERS: usize = 64;
    const DEPTH: u64 = 200; // about 800 KiB: three segments past a 256 KiB window
    const FILLERS: usize = 60_000;
    gort::Builder::new().procs(child_procs()).run(|| {
        let done = WaitGroup::new();
        let divers: Vec<Chan<u64>> = (0..DIVERS).map(|_| Chan::new(0)).collect();
        let deep = WaitGroup::new();
        for (id, ch) in divers.iter().enumerate() {
            done.add(1);
            deep.add(1);
            let (ch, done, deep) = (ch.clone(), done.clone(), deep.clone());
            gort::go!(move || {
                let id = id as u64;
                // Parks deep in its segments after the others started: the wake-up below
                // carries the value it checks against.
                deep.done();
                let got = dive_and_park(id, DEPTH, &ch);
                assert_eq!(got, held_sum::<512>(id, DEPTH, id * 3));
                done.done();
            });
        }
        deep.wait();
        // Fillers: more parked goroutines than the budget, so windows are released and
        // committed all around the divers' windows and segments.
        let filled = WaitGroup::new();
        let checked = Arc::new(AtomicUsize::new(0));
        let fill = park_holders(FILLERS, 1_000, 0, &filled, &done, &checked);
        // Let the fillers park and the divers reach their bottoms, then wake everyone,
        // divers in the middle.
        filled.wait();
        gort::time::sleep(Duration::from_millis(200));
        assert_maps_within_budget();
        for (i, ch) in fill.iter().enumerate() {
            ch.send(wake_value(i as u64 + 1_000));
            if i == FILLERS / 2 {
                for (j, d) in divers.iter().enumerate() {
                    d.send(j as u64 * 3);
                }
            }
        }
        done.wait();
        assert_eq!(checked.load(Ordering::Relaxed), FILLERS);
        let s = gort::debug::sched_stats();
        assert!(s.stack_growths >= DIVERS as u64, "the divers grew: {s:?}");
        assert_maps_within_budget();
    });
}

// ---------------------------------------------------------------------------------------------
// 5. The true limit: every committed window in use is a clear fatal error.

#[test]
fn the_true_limit_is_a_clear_fatal_error() {
    for before_5_10 in [false, true] {
        let out = old_kernel_child("child_limit", before_5_10, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "Go's exit status: {err}");
        assert!(
            err.contains("fatal error: cannot map a 262144-byte goroutine stack")
                && err.contains("MADV_GUARD_INSTALL")
                && err.contains("copy-out of parked stacks is off")
                && err.contains("vm.max_map_count"),
            "{err}"
        );
    }
}

#[test]
fn child_limit() {
    if !is_child() {
        return;
    }
    // Copy-out off: parked goroutines keep their windows, so the budget is the limit.
    gort::Builder::new()
        .procs(2)
        .copy_out_parked(false)
        .run(|| {
            let gate: Chan<()> = Chan::new(0);
            for _ in 0..100_000 {
                let gate = gate.clone();
                gort::go!(move || {
                    gate.recv();
                });
            }
            gort::time::sleep(Duration::from_secs(30));
            unreachable!("100,000 parked goroutines with copy-out off fit no budget");
        });
}
