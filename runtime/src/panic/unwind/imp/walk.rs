//! The walk: the two phases of an unwind with cached rules, start-up, and the hand-over to
//! libgcc.
//!
//! ```text
//! _Unwind_RaiseException(exc)                      _Unwind_Resume(exc)   (end of a cleanup)
//!   phase 1: from the caller, rule by rule,          exc marked by us? no -> libgcc's resume
//!     find the handler (Catch) and the first          yes: from the caller, rule by rule,
//!     frame with a pad; any frame without a           land on the next pad (cleanup or the
//!     usable rule -> libgcc's raise, untouched        handler); a frame without a usable rule
//!   mark exc, note the handler's CFA                  -> clear the mark, libgcc's resume
//!   land on the first pad                             (it finds the handler by its CFA)
//! ```
//!
//! # Invariants
//! - Phase 1 reads the stack and the cache only: a hand-over from it leaves the exception and
//!   every register as the raise found them.
//! - An exception carries [`mark`] in `private_1` exactly while the fast path owns its unwind;
//!   libgcc never sees it marked (the hand-over in `fast_resume` clears it first).
//! - A marked exception's `private_2` is the handler frame's CFA, libgcc's own phase-2 key.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Once;

use super::asm::{land, Regs, LIBGCC_RAISE, LIBGCC_RESUME, RBP};
use super::cache::{Action, Rule, SAME};
use super::cfi;
use crate::panic::unwind::Counts;

/// The head of every exception the unwinder sees (`struct _Unwind_Exception`, x86-64).
#[repr(C)]
pub(crate) struct Exception {
    class: u64,
    cleanup: usize,
    private_1: usize,
    private_2: usize,
}

/// std's exception class for Rust panics (panic_unwind's `RUST_EXCEPTION_CLASS`).
const RUST_CLASS: u64 = u64::from_ne_bytes(*b"MOZ\0RUST");

/// More frames than this between a raise and its handler: libgcc takes the unwind.
const MAX_FRAMES: usize = 100_000;

const OFF: u8 = 0;
const ON: u8 = 1;
static STATE: AtomicU8 = AtomicU8::new(OFF);

static FAST: AtomicU64 = AtomicU64::new(0);
static HANDED_OVER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn counts() -> Counts {
    Counts {
        enabled: STATE.load(Ordering::Relaxed) == ON,
        fast: FAST.load(Ordering::Relaxed),
        handed_over: HANDED_OVER.load(Ordering::Relaxed),
    }
}

/// The CFA of the frame `r` with rule `rule`.
#[inline(always)]
fn cfa(r: &Regs, rule: &Rule) -> usize {
    let base = if rule.cfa_rbp { r.saved[RBP] } else { r.rsp };
    base.wrapping_add(rule.cfa_off as isize as usize)
}

/// Steps from the frame `r` to its caller.
///
/// # Safety
/// `rule` is the rule of `r.ip`, and `r` a live frame of the current stack: the rule's save
/// slots are readable stack words.
#[inline(always)]
unsafe fn step(r: &mut Regs, rule: &Rule) {
    let cfa = cfa(r, rule);
    for (v, &off) in r.saved.iter_mut().zip(rule.saved.iter()) {
        if off != SAME {
            // SAFETY: the frame's CFI says the register was saved there (the caller's
            // contract).
            *v = unsafe { *(cfa.wrapping_add(off as isize as usize) as *const usize) };
        }
    }
    // SAFETY: as above, for the return address.
    r.ip = unsafe { *(cfa.wrapping_add(rule.ra_off as isize as usize) as *const usize) };
    r.rsp = cfa;
}

/// What phase 1 found: where to land first, and the handler frame's stack pointer at its
/// call site (its callee's CFA: what libgcc's `uw_identify_context` gives the handler's
/// context, the key its phase 2 looks for in `private_2`).
struct Plan {
    first: Regs,
    handler_sp: usize,
}

/// Phase 1: from the frame `r`, finds the handler; `None` when a frame on the way has no
/// usable rule (libgcc takes the exception).
///
/// # Safety
/// `r` is a live frame of the current stack.
unsafe fn search(mut r: Regs) -> Option<Plan> {
    let mut first = None;
    for _ in 0..MAX_FRAMES {
        let rule = cfi::rule(r.ip)?;
        match rule.action {
            Action::Continue => {}
            Action::Cleanup => {
                if first.is_none() {
                    first = Some(Regs { ip: rule.lpad, ..r });
                }
            }
            Action::Catch => {
                let first = first.unwrap_or(Regs { ip: rule.lpad, ..r });
                return Some(Plan {
                    first,
                    handler_sp: r.rsp,
                });
            }
        }
        // SAFETY: `r` is live (the caller's contract, then the previous step's result).
        unsafe { step(&mut r, rule) };
        if r.ip == 0 {
            return None;
        }
    }
    None
}

/// The Rust half of the `_Unwind_RaiseException` stub: returns only to hand `exc` to libgcc.
///
/// # Safety
/// Called by the stub only, with the raising frame's registers.
pub(crate) unsafe extern "C" fn fast_raise(exc: *mut Exception, regs: *const Regs) {
    // SAFETY: `exc` is the exception std raises; `regs` the stub's copy of its caller's frame.
    unsafe {
        if STATE.load(Ordering::Acquire) == ON && (*exc).class == RUST_CLASS {
            if let Some(plan) = search(*regs) {
                #[cfg(debug_assertions)]
                cross_check(&*regs, plan.handler_sp);
                FAST.fetch_add(1, Ordering::Relaxed);
                (*exc).private_1 = mark_word();
                (*exc).private_2 = plan.handler_sp;
                land(&plan.first, exc.cast());
            }
            HANDED_OVER.fetch_add(1, Ordering::Relaxed);
        }
    }
    resolve_libgcc();
}

/// The Rust half of the `_Unwind_Resume` stub: returns only to hand `exc` to libgcc.
///
/// # Safety
/// Called by the stub only, at the end of a landing pad, with that frame's registers.
pub(crate) unsafe extern "C" fn fast_resume(exc: *mut Exception, regs: *const Regs) {
    // SAFETY: `exc` is the exception the landing pad resumes, `regs` its frame.
    unsafe {
        if (*exc).private_1 == mark_word() {
            let mut r = *regs;
            for _ in 0..MAX_FRAMES {
                let Some(rule) = cfi::rule(r.ip) else { break };
                if rule.action != Action::Continue {
                    land(&Regs { ip: rule.lpad, ..r }, exc.cast());
                }
                step(&mut r, rule);
                if r.ip == 0 {
                    break;
                }
            }
            // libgcc finishes phase 2 from here: it finds the handler by `private_2`.
            (*exc).private_1 = 0;
            HANDED_OVER.fetch_add(1, Ordering::Relaxed);
        }
    }
    resolve_libgcc();
}

/// The mark of an exception the fast path owns, in the word where libgcc keeps a forced
/// unwind's stop function: if libgcc ever met a marked exception it would call this.
extern "C" fn mark(
    _version: i32,
    _actions: i32,
    _class: u64,
    _exc: *mut Exception,
    _ctx: *mut u8,
    _arg: *mut u8,
) -> i32 {
    const MSG: &[u8] = b"fatal error: gort's fast unwinder lost an exception to libgcc\n";
    // SAFETY: write(2) on stderr with a valid buffer; abort has no preconditions.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::abort()
    }
}

fn mark_word() -> usize {
    mark as *const () as usize
}

/// Resolves libgcc_s's two functions for the stubs' hand-over jumps.
fn resolve_libgcc() {
    if LIBGCC_RESUME.load(Ordering::Acquire) != 0 {
        return;
    }
    for (slot, name) in [
        (&LIBGCC_RAISE, c"_Unwind_RaiseException"),
        (&LIBGCC_RESUME, c"_Unwind_Resume"),
    ] {
        // SAFETY: dlsym with a valid C string; RTLD_NEXT looks in the objects after the
        // executable, where libgcc_s (which std links) defines both.
        let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        if f == 0 {
            mark(
                0,
                0,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        slot.store(f, Ordering::Release);
    }
}

/// Turns the fast path on (see the module doc of `panic::unwind`).
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        resolve_libgcc();
        if std::env::var_os("GORT_UNWIND").is_some_and(|v| v == "libgcc") {
            return;
        }
        if let Err(why) = start() {
            STATE.store(OFF, Ordering::Release);
            if cfg!(debug_assertions) {
                eprintln!("gort: the fast unwinder is off: {why}");
            }
        }
    });
}

/// The probe's payload.
struct Probe;

/// Sets `*0` when dropped, so the probe sees its cleanup ran.
struct Ran<'a>(&'a std::cell::Cell<bool>);

impl Drop for Ran<'_> {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A Rust function with a cleanup pad around a call that panics: std's personality is its
/// FDE's, and the self-check panics through it.
#[inline(never)]
fn probe(ran: &std::cell::Cell<bool>, raise: fn()) {
    let _guard = Ran(ran);
    std::hint::black_box(raise)();
}

fn probe_raise() {
    std::panic::resume_unwind(Box::new(Probe));
}

fn start() -> Result<(), &'static str> {
    let Some(img) = cfi::image() else {
        return Err("the executable has no .eh_frame_hdr search table");
    };
    if !img.text.contains(&(probe as *const () as usize)) {
        return Err(
            "gort is not part of the main executable (a shared object's frames go to libgcc)",
        );
    }
    if !cfi::set_personality(probe as *const () as usize) {
        return Err("no personality on the probe's FDE");
    }
    STATE.store(ON, Ordering::Release);
    let ran = std::cell::Cell::new(false);
    let before = FAST.load(Ordering::Relaxed);
    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| probe(&ran, probe_raise)));
    match caught {
        Err(p) if p.is::<Probe>() && ran.get() => {}
        _ => return Err("the probe panic did not come back as raised"),
    }
    if FAST.load(Ordering::Relaxed) == before {
        return Err("the probe panic did not take the fast path");
    }
    Ok(())
}

/// Debug builds: the fast walk from `regs` to the handler must visit the frames libgcc's
/// own walk visits, with the same stack pointers (libgcc's context for a frame holds its
/// callee's CFA, which is the frame's `rsp`); abort with both walks otherwise.
#[cfg(debug_assertions)]
unsafe fn cross_check(regs: &Regs, handler_sp: usize) {
    use std::ffi::c_void;
    extern "C" {
        fn _Unwind_Backtrace(
            f: extern "C" fn(*mut c_void, *mut c_void) -> i32,
            arg: *mut c_void,
        ) -> i32;
        fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
        fn _Unwind_GetCFA(ctx: *mut c_void) -> usize;
    }
    extern "C" fn each(ctx: *mut c_void, arg: *mut c_void) -> i32 {
        // SAFETY: `arg` is the Vec below; `ctx` the live context libgcc passes.
        unsafe {
            let frames = &mut *arg.cast::<Vec<(usize, usize)>>();
            frames.push((_Unwind_GetIP(ctx), _Unwind_GetCFA(ctx)));
            if frames.len() >= 4096 {
                return 5; // _URC_END_OF_STACK: enough
            }
        }
        0
    }
    /// A walk: each frame's (return address, stack pointer).
    type Walk = Vec<(usize, usize)>;
    thread_local! {
        /// The two walks, kept per thread so that a warm panic allocates nothing more in a
        /// debug build than in a release one (the walk never parks, so the goroutine stays
        /// on this thread meanwhile).
        static WALKS: std::cell::RefCell<[Walk; 2]> =
            const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
    }
    // (`try_with`: a panic in a thread-local destructor runs after WALKS is gone.)
    let _ = WALKS.try_with(|w| {
        let Ok(mut w) = w.try_borrow_mut() else {
            return; // a panic inside the check itself: libgcc reports it
        };
        let [theirs, ours] = &mut *w;
        theirs.clear();
        ours.clear();
        // SAFETY: `each` matches the callback type and only touches `theirs`.
        unsafe { _Unwind_Backtrace(each, (theirs as *mut Vec<(usize, usize)>).cast()) };
        let Some(at) = theirs.iter().position(|f| f.0 == regs.ip) else {
            fail(regs, theirs, &[]);
        };
        let mut r = *regs;
        loop {
            let rule = cfi::rule(r.ip).expect("phase 1 found a rule for every frame");
            ours.push((r.ip, r.rsp));
            if rule.action == Action::Catch {
                break;
            }
            // SAFETY: the frames are those phase 1 just walked.
            unsafe { step(&mut r, rule) };
        }
        if ours.last().map(|f| f.1) != Some(handler_sp) {
            fail(regs, theirs, ours);
        }
        for (i, f) in ours.iter().enumerate() {
            match theirs.get(at + i) {
                Some(t) if t == f => {}
                None => break, // libgcc's list stopped early (very deep stacks)
                Some(_) => fail(regs, theirs, ours),
            }
        }
    });

    #[cold]
    fn fail(regs: &Regs, theirs: &[(usize, usize)], ours: &[(usize, usize)]) -> ! {
        eprintln!(
            "fatal error: gort's fast unwinder disagrees with libgcc\n\
             from {regs:x?}\nlibgcc (ip, cfa): {theirs:x?}\nfast (ip, cfa): {ours:x?}"
        );
        std::process::abort()
    }
}
