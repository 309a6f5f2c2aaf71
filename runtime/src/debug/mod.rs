//! Looking inside a running program: goroutine dumps (on `SIGQUIT`, as Go does, or through
//! [`write_goroutines`]), the scheduler's numbers ([`sched_stats`]) and Go's
//! `GODEBUG=schedtrace` lines (printed by sysmon).
//!
//! A dump shows every goroutine Go-style:
//!
//! ```text
//! goroutine 7 [chan receive, 3 minutes]:
//!         src/main.rs:42:17
//! created by goroutine 1
//!         src/main.rs:30:5
//! ```
//!
//! The location under the header is where the goroutine parked (the user's call of the
//! channel operation, lock, sleep or join, recorded through `#[track_caller]` at one pointer
//! store per park); `created by` names the goroutine and the `go!`/`spawn` site that started it.
//! Go prints each goroutine's whole stack. A backtrace of a parked goroutine's own stack is
//! possible in principle (its saved registers are at its parked stack pointer, and the
//! unwinder could start there on a copy of its context), but needs an unwinder that starts
//! from a given register set (the `backtrace` crate cannot); it is not done.
//!
//! ```
//! gort::run(|| {
//!     let mut out = Vec::new();
//!     gort::debug::write_goroutines(&mut out).unwrap(); // Go: pprof.Lookup("goroutine")
//!     let dump = String::from_utf8(out).unwrap();
//!     assert!(dump.starts_with("goroutine 1 [running]:"), "{dump}");
//! });
//! ```

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::sched::{Shared, Status};

/// Writes every goroutine of every runtime in this process, Go-style (see the module docs).
/// With several runtimes, each one's goroutines follow a `runtime N:` line.
///
/// # Example
///
/// ```
/// gort::run(|| {
///     let ch: gort::Chan<u8> = gort::Chan::new(0);
///     let c = ch.clone();
///     gort::go!(move || {
///         c.recv();
///     });
///     // Dump until the child has parked in its receive (it may still be starting on
///     // another thread).
///     let mut dump = String::new();
///     for _ in 0..1000 {
///         let mut out = Vec::new();
///         gort::debug::write_goroutines(&mut out).unwrap();
///         dump = String::from_utf8(out).unwrap();
///         if dump.contains("[chan receive]:") {
///             break;
///         }
///         gort::time::sleep(std::time::Duration::from_millis(1));
///     }
///     assert!(dump.contains("[chan receive]:"), "{dump}");
///     assert!(dump.contains("created by goroutine 1"), "{dump}");
///     ch.send(1);
/// });
/// ```
pub fn write_goroutines(w: &mut impl Write) -> std::io::Result<()> {
    let all = runtimes();
    for (i, shared) in all.iter().enumerate() {
        if all.len() > 1 {
            writeln!(w, "runtime {}:", i + 1)?;
        }
        w.write_all(dump(shared).as_bytes())?;
    }
    Ok(())
}

/// The live runtimes of the process.
fn runtimes() -> Vec<Arc<Shared>> {
    crate::sched::RUNTIMES
        .lock()
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .filter(|s| !s.is_shutdown())
        .collect()
}

/// One runtime's goroutines.
fn dump(shared: &Shared) -> String {
    let mut out = String::new();
    let gs = shared.allgs.lock().clone();
    for g in gs {
        match g.status() {
            Status::Dead | Status::Idle => continue,
            _ => {
                g.describe_waiting(&mut out);
                out.push('\n');
            }
        }
    }
    out
}

pub use crate::sched::trace::SchedStats;

/// The numbers of the calling goroutine's runtime (or the thread's, inside
/// `Handle::enter`).
///
/// # Panics
/// Outside a runtime.
///
/// ```
/// gort::Builder::new().procs(1).run(|| {
///     let ch: gort::Chan<()> = gort::Chan::new(0);
///     let c = ch.clone();
///     gort::go!(move || c.send(()));
///     let s = gort::debug::sched_stats();
///     assert_eq!((s.goroutines, s.gomaxprocs), (2, 1)); // main and the sender
///     assert_eq!(s.idle_procs, 0); // main holds the one processor
///     assert_eq!(s.local_queues.len(), 1);
///     ch.recv();
/// });
/// ```
#[track_caller]
pub fn sched_stats() -> SchedStats {
    match crate::sched::with_current_shared(|s| crate::sched::trace::stats(s)) {
        Some(s) => s,
        None => panic!("gort::debug::sched_stats called outside a gort runtime"),
    }
}

/// Go's `debug.SetMaxStack`: sets the most stack one goroutine of the calling goroutine's
/// runtime may use, its window and the segments it grows onto together, and returns the
/// previous setting. The initial setting is Go's 64-bit default, 1,000,000,000 bytes.
///
/// A goroutine whose next segment would take it past the limit is not given one: it goes on
/// where it is, and if it then runs off its stack the program crashes with Go's report,
/// `runtime: goroutine stack exceeds <limit>-byte limit`, and exit status 2. As in Go, a
/// segment is twice the size of the stack before it, so the deepest reach under a limit is
/// between half of it and all of it. Windows themselves are not limited by it
/// ([`Builder::stack_size`](crate::Builder::stack_size)).
///
/// # Panics
/// Outside a runtime (a goroutine, or a thread inside `Handle::enter`).
///
/// # Example
///
/// ```
/// gort::run(|| {
///     let before = gort::debug::set_max_stack(64 << 20);
///     assert_eq!(before, 1_000_000_000);
///     assert_eq!(gort::debug::set_max_stack(before), 64 << 20);
/// });
/// ```
#[track_caller]
pub fn set_max_stack(bytes: usize) -> usize {
    match crate::sched::with_current_shared(|s| s.max_stack.swap(bytes, Ordering::Relaxed)) {
        Some(prev) => prev,
        None => panic!("gort::debug::set_max_stack called outside a gort runtime"),
    }
}

/// `GODEBUG=schedtrace=MS,scheddetail=1` from the environment (Go's variable and keys).
pub(crate) fn godebug() -> (u64, bool) {
    let Ok(v) = std::env::var("GODEBUG") else {
        return (0, false);
    };
    let mut trace = 0;
    let mut detail = false;
    for kv in v.split(',') {
        match kv.trim().split_once('=') {
            Some(("schedtrace", ms)) => trace = ms.trim().parse().unwrap_or(0),
            Some(("scheddetail", d)) => detail = d.trim() == "1",
            _ => {}
        }
    }
    (trace, detail)
}

// ---------------------------------------------------------------------------------------------
// SIGQUIT

/// The write end of the pipe the `SIGQUIT` handler writes to (-1 before installation).
static QUIT_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// On `SIGQUIT` (Ctrl-\), print every goroutine and exit with status 2, as Go does. Installed
/// once per process, when the first runtime starts, and only over the default disposition (a
/// program that handles `SIGQUIT` itself keeps its handler).
pub(crate) fn install_sigquit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: querying the current disposition with a null new action.
        let current = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGQUIT, std::ptr::null(), &mut old);
            old.sa_sigaction
        };
        if current != libc::SIG_DFL {
            return;
        }
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        let read_fd = fds[0];
        QUIT_PIPE.store(fds[1], Ordering::SeqCst);
        let watcher = std::thread::Builder::new()
            .name("gort-sigquit".to_string())
            .spawn(move || {
                let mut b = [0u8; 1];
                // SAFETY: reading one byte into a live buffer from our pipe.
                let n = unsafe { libc::read(read_fd, b.as_mut_ptr().cast(), 1) };
                if n == 1 {
                    let mut out = Vec::new();
                    let _ = writeln!(out, "SIGQUIT: quit\n");
                    let _ = write_goroutines(&mut out);
                    crate::panic::die(&String::from_utf8_lossy(&out));
                }
            });
        if watcher.is_err() {
            return;
        }
        // The watcher thread only reads a pipe: it can wake no goroutine.
        crate::sched::RUNTIME_THREADS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: a zeroed sigaction is "no flags, empty mask"; the handler only calls
        // write(2), which is async-signal-safe.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigquit as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGQUIT, &act, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_sigquit(_: libc::c_int) {
    let fd = QUIT_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = [1u8];
        // SAFETY: write(2) of one byte from a live buffer; async-signal-safe.
        unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
    }
}

/// How the process's Rust panics were unwound: by gort's fast unwinder (a cache of each return
/// address's unwind rule, docs/defer-panic-recover.md, "The fast unwinder") or by libgcc's.
///
/// ```
/// gort::run(|| {
///     let r = std::panic::catch_unwind(|| std::panic::resume_unwind(Box::new(1)));
///     assert!(r.is_err());
///     let s = gort::debug::unwind_stats();
///     if s.fast_path {
///         assert!(s.fast >= 1);
///     }
/// });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnwindStats {
    /// Whether the fast path is on: x86-64 Linux with glibc, not `GORT_UNWIND=libgcc`, and
    /// its start-up self-check passed. It starts with the first runtime.
    pub fast_path: bool,
    /// Panics the fast path unwound from the raise to the handler.
    pub fast: u64,
    /// Panics (or the rest of one, after a cleanup) handed to libgcc because a frame on the
    /// way was not a plain Rust frame of the executable (a shared object, C or C++ code,
    /// unusual call-frame information, a `nounwind` call).
    pub handed_over: u64,
}

/// The process's [`UnwindStats`] so far. Callable anywhere, with or without a runtime.
///
/// ```
/// let before = gort::debug::unwind_stats();
/// let after = gort::debug::unwind_stats();
/// assert!(after.fast >= before.fast);
/// ```
pub fn unwind_stats() -> UnwindStats {
    let c = crate::panic::unwind::counts();
    UnwindStats {
        fast_path: c.enabled,
        fast: c.fast,
        handed_over: c.handed_over,
    }
}
