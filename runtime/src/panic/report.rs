//! The crash report of an unrecovered panic (Go's `printpanics` and traceback header), the
//! panic hook that records where a panic started, and the report of a panic that std would
//! abort on (one out of a destructor during an unwind).

use std::any::Any;
use std::backtrace::Backtrace;
use std::fmt::Write as _;
use std::panic::{self};

use super::backtrace_policy;
use super::chain::{drop_quietly, state_ptr, DeferState, GoexitMarker};
use super::value::PanicLocation;

/// The panic hook: inside a goroutine, record where the panic started and print nothing (a
/// recovered panic prints nothing in Go; an unrecovered one is reported by the goroutine's
/// top). Returns false to let the previous hook print (plain threads).
pub(crate) fn on_panic(info: &panic::PanicHookInfo<'_>) -> bool {
    let g = crate::sched::current_g();
    let on_goroutine = g.is_some();
    let location = info.location().map(PanicLocation::from_std);
    let text = {
        let p = info.payload();
        p.downcast_ref::<&str>()
            .copied()
            .or_else(|| p.downcast_ref::<String>().map(String::as_str))
    };
    if let (Some(g), Some(msg @ (PANIC_IN_CLEANUP | PANIC_NO_UNWIND))) = (g, text) {
        // SAFETY: our own state; the running goroutine's record is alive.
        unsafe { abort_report(&*state_ptr(), &*g, msg, location.as_ref()) }
    }
    let bt = match &location {
        Some(l) => backtrace_policy::capture_for(l),
        None if backtrace_policy::wanted() => Some(Backtrace::force_capture()),
        None => None,
    };
    // SAFETY: our own state (the hook runs on the panicking goroutine or thread).
    let st = unsafe { &mut *state_ptr() };
    st.begin_fresh(location, bt);
    if on_goroutine {
        if let Some(s) = text {
            st.fresh_text.push_str(s);
        }
    }
    on_goroutine
}

/// What std raises (and then aborts on) when a panic unwinds out of a destructor that runs
/// during an unwind, and out of a function that cannot unwind.
const PANIC_IN_CLEANUP: &str = "panic in a destructor during cleanup";
const PANIC_NO_UNWIND: &str = "panic in a function that cannot unwind";

/// A goroutine panicked inside a `Drop` while it was unwinding (or out of a function that
/// cannot unwind): std is about to abort with only "thread caused non-unwinding panic". Print
/// both panics Go-style instead (the first, the one raised in the destructor, where each
/// started) and end the process with status 2, as a fatal error.
fn abort_report(
    st: &DeferState,
    g: &crate::sched::Goroutine,
    msg: &str,
    at: Option<&PanicLocation>,
) -> ! {
    let text = |t: &str| {
        if t.is_empty() {
            "(a panic value that is not a string)".to_string()
        } else {
            t.to_string()
        }
    };
    let mut report = String::new();
    if msg == PANIC_IN_CLEANUP {
        let _ = writeln!(report, "panic: {}", text(&st.prev_text));
        let _ = writeln!(
            report,
            "\tpanic: {} [in a destructor while unwinding]",
            text(&st.fresh_text)
        );
    } else {
        let _ = writeln!(report, "panic: {}", text(&st.fresh_text));
    }
    let _ = writeln!(report, "fatal error: {msg}\n");
    let _ = writeln!(report, "goroutine {} [running]:", g.id());
    if msg == PANIC_IN_CLEANUP {
        if let Some(l) = &st.prev_location {
            let _ = writeln!(report, "\tfirst panicked at {l}");
        }
    }
    if let Some(l) = st.fresh_location.as_ref().or(at) {
        let _ = writeln!(report, "\tpanicked at {l}");
    }
    g.describe_created(&mut report);
    super::die(&report)
}

/// A backtrace without the panic machinery above the panicking frame (the hook, std's and
/// core's panic functions) and without the runtime below the goroutine's entry.
fn trim_backtrace(bt: &str) -> String {
    let is_frame = |l: &str| {
        let t = l.trim_start();
        t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    fn name(l: &str) -> &str {
        l.trim_start().split_once(": ").map_or("", |(_, n)| n)
    }
    let machinery = |n: &str| {
        [
            "gort::panic::",
            "std::panicking::",
            "core::panicking::",
            "std::panic::panic_any",
            "std::sys::backtrace::",
            "__rustc::",
            "rust_begin_unwind",
            "<alloc::boxed::Box<dyn",
            "core::option::unwrap_failed",
            "core::option::expect_failed",
            "core::result::unwrap_failed",
        ]
        .iter()
        .any(|p| n.starts_with(p))
    };
    let lines: Vec<&str> = bt.lines().collect();
    // From the first frame that is not panic machinery, to the goroutine's entry.
    let start = lines
        .iter()
        .position(|l| is_frame(l) && !machinery(name(l)))
        .unwrap_or(0);
    let mut out = String::new();
    for l in &lines[start..] {
        if is_frame(l)
            && ["gort::sched::run_entry", "gort::sched::goroutine_main"]
                .iter()
                .any(|e| name(l).starts_with(e))
        {
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// An unwind reached the top of goroutine `goid`, after all its frames.
pub(crate) enum TopEnd {
    /// Goexit: the goroutine just ends.
    Goexit,
    /// An unrecovered panic: its value and the crash report (the chain, the goroutine header,
    /// where it started, a backtrace when `RUST_BACKTRACE` asks for one).
    Panic(Box<dyn Any + Send>, String),
}

/// The goroutine's top catches what its frames did not; the state is reset for reuse.
pub(crate) fn at_top(
    st: &mut DeferState,
    payload: Box<dyn Any + Send>,
    g: &crate::sched::Goroutine,
) -> TopEnd {
    let end = if payload.is::<GoexitMarker>() && st.propagating {
        TopEnd::Goexit
    } else {
        let c = st.adopt(payload);
        let mut report = String::new();
        st.print_chain(&mut report);
        let _ = writeln!(report, "\ngoroutine {} [running]:", g.id());
        if let Some(l) = &st.panics[c].location {
            let _ = writeln!(report, "\tpanicked at {l}");
        }
        // Go's traceback shows the frame that ran the deferred calls stopped where the earlier
        // panic started (a send on a closed channel, then a deferred close of it: Go names
        // the send's line): name each earlier panic still in the chain, latest first.
        for p in st.panics[..c].iter().rev() {
            if p.goexit {
                // A Goexit ran the deferred calls from here on down: no panic site to name.
                break;
            }
            if let Some(l) = &p.location {
                let _ = writeln!(report, "\t\tin a deferred call run by the panic at {l}");
            }
        }
        let rec = &mut st.panics[c];
        match &rec.backtrace {
            Some(bt) => report.push_str(&trim_backtrace(&bt.to_string())),
            None if backtrace_policy::wanted() => report.push_str(
                "note: no backtrace: panics that started here were recovered before, so gort \
                 stopped capturing them; set GORT_BACKTRACE=always to capture every time\n",
            ),
            None => report.push_str(
                "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
            ),
        }
        g.describe_created(&mut report);
        let p = rec.payload.take().unwrap_or_else(|| Box::new(GoexitMarker));
        for r in st.panics.drain(..) {
            drop_quietly(r.payload);
        }
        TopEnd::Panic(p, report)
    };
    st.reset();
    end
}
