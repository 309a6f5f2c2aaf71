//! Go's defer, panic, recover and Goexit, and the crash report of an unrecovered panic.
//!
//! - `value.rs`: what `recover` returns ([`Panic`], [`RuntimeError`]) and how values print.
//! - `record.rs`: deferred calls as values and the defer list's records.
//! - `named.rs`: [`Named`], a frame's result while its deferred calls run.
//! - `frame.rs`: frames: where deferred calls run and an unwind is caught.
//! - `chain.rs`: each goroutine's defer list and panic chain, the recover rule, Goexit.
//! - `report.rs`: the crash report, the panic hook, the abort report.
//! - `backtrace_policy.rs`: when a panic captures a backtrace.
//! - `unwind/`: the fast unwinder, a cache of unwind rules under Rust panics.
//!
//! `docs/defer-panic-recover.md` explains the design with diagrams.

pub(crate) mod backtrace_policy;
pub(crate) mod chain;
pub(crate) mod frame;
pub(crate) mod named;
pub(crate) mod record;
pub(crate) mod report;
pub(crate) mod unwind;
pub(crate) mod value;

use std::io::Write;
use std::sync::Once;

pub use chain::{goexit, recover};
pub use named::Named;
pub use value::{Panic, PanicLocation, RuntimeError};

/// Installs gort's panic hook once per process, in front of the hook that was there.
///
/// Inside a goroutine the hook only records where the panic started: Go prints nothing for a
/// panic that gets recovered, and the goroutine's top prints the report of one that does not.
/// On other threads the previous hook runs as before.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        unwind::init();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !report::on_panic(info) {
                prev(info)
            }
        }));
    });
}

/// Go's `throw`: a fatal error of the runtime or a broken invariant. Prints
/// `fatal error: msg` and the running goroutine's header with the caller's location (or
/// `runtime stack:` with it, on an M's own stack), and exits with status 2. No deferred call
/// runs and nothing can recover it, unlike a panic; under `gort::run` it also ends the process,
/// as in Go.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn throw(msg: &str) -> ! {
    throw_at(msg, std::panic::Location::caller())
}

/// `throw` naming `at` (a caller that reached it through a function pointer, `coro`'s).
#[cold]
#[inline(never)]
pub(crate) fn throw_at(msg: &str, at: &std::panic::Location<'_>) -> ! {
    let at = format!("{}:{}:{}", at.file(), at.line(), at.column());
    let mut report = format!("fatal error: {msg}\n\n");
    match crate::sched::current_g() {
        // SAFETY: the running goroutine's record is alive while it runs.
        Some(g) => unsafe { (*g).describe(&mut report, "running", Some(&at)) },
        None => report.push_str(&format!("runtime stack:\n\t{at}\n")),
    }
    die(&report)
}

/// A throw whose report is `text` as it stands (Go's messages that come with a `runtime:`
/// line of their own, such as thread exhaustion); exit status 2.
#[cold]
#[inline(never)]
pub(crate) fn throw_plain(text: &str) -> ! {
    die(&format!("{text}\n"))
}

/// Prints `report` and exits with status 2, as Go does for an unrecovered panic or a fatal
/// error. Other goroutines do not run again: the process ends here, as Go's does, without
/// running exit handlers (`_exit`): nothing is torn down for a crash, and a sanitizer's leak
/// check would only report what the crashed program still held. Buffered stdout is written
/// first.
pub(crate) fn die(report: &str) -> ! {
    let _ = std::io::stdout().lock().flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(report.as_bytes());
    let _ = err.flush();
    // SAFETY: `_exit` has no preconditions; it ends the process at once.
    unsafe { libc::_exit(2) }
}
