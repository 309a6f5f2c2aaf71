//! Stack-overflow detection: a chained SIGSEGV/SIGBUS handler on an alternate signal stack.
//!
//! A goroutine that runs off the bottom of its window (or of a growth segment) touches the
//! guard page below it. The kernel then raises SIGSEGV on the faulting thread; since the
//! goroutine's own stack is the one that is exhausted, the handler must run on an alternate
//! signal stack (`SA_ONSTACK`; every M thread makes sure it has one).
//!
//! The handler asks the segment registry (`stack::guard_hit`) whether the fault address is a
//! goroutine guard page. If it is, it prints Go's report and exits with status 2:
//!
//! ```text
//! runtime: goroutine stack exceeds 262144-byte limit
//! fatal error: stack overflow
//!
//! goroutine 7 [running]:
//! ```
//!
//! The limit is the size of the stack the goroutine ran off (its window, or a growth segment),
//! or, when it was refused a further segment (`sched::grow`), the runtime's maximum stack.
//!
//! Any other fault goes to the handler that was installed before ours (usually std's, which
//! reports overflows of std thread stacks), or to the default action. Everything here is
//! async-signal-safe: atomic loads, a const-initialised thread-local `Cell`, `write(2)` and
//! `_exit(2)`.

use std::mem::MaybeUninit;
use std::sync::Once;

use super::stack;

/// What the scheduler lends `coro`: its part of an overflow report, and its `throw`.
/// Registered once, by the scheduler ([`set_sched_hooks`]), so that `coro` imports nothing of
/// the crate. The report's two functions run in the signal handler and must be
/// async-signal-safe (atomic loads, thread-locals, `write(2)`).
pub(crate) struct SchedHooks {
    /// The runtime's maximum stack, if the running goroutine was refused growth by it (the
    /// limit it hit); `None` reports the size of the stack it ran off.
    pub(crate) refused_limit: fn() -> Option<usize>,
    /// Writes the running goroutine's lines (`goroutine N [running]:` and what its record
    /// names), if a goroutine runs on this thread.
    pub(crate) describe_goroutine: fn(),
    /// The scheduler's `throw` (Go's fatal error: the report names the running goroutine), for
    /// a stack operation that cannot fail safely (`stack::decommit`). Not called in a signal
    /// handler.
    pub(crate) throw: fn(&str, &'static std::panic::Location<'static>) -> !,
}

/// A fatal error of a stack operation: the scheduler's `throw` once registered; before that
/// (no runtime has started, so no goroutine runs), Go's `fatal error:` line and exit status 2.
#[track_caller]
pub(crate) fn throw(msg: &str) -> ! {
    if let Some(h) = HOOK.get() {
        (h.throw)(msg, std::panic::Location::caller())
    }
    write_stderr(b"fatal error: ");
    write_stderr(msg.as_bytes());
    write_stderr(b"\n");
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(2) }
}

static HOOK: std::sync::OnceLock<SchedHooks> = std::sync::OnceLock::new();

/// Registers the scheduler's part of the report (the first registration stays).
pub(crate) fn set_sched_hooks(hook: SchedHooks) {
    let _ = HOOK.set(hook);
}

static INSTALL: Once = Once::new();
/// The actions that were in place before ours, for SIGSEGV and SIGBUS. Written once, inside
/// `INSTALL`, before our handler is installed; read only by the handler.
static mut PREV: [MaybeUninit<libc::sigaction>; 2] = [MaybeUninit::uninit(); 2];

/// Installs the handler for the process, once.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        for (i, sig) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; `handler` has
            // the SA_SIGINFO signature; PREV is written before the handler that reads it is
            // installed, and never again (Once).
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = handler as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut act.sa_mask);
                let prev = std::ptr::addr_of_mut!(PREV[i]).cast::<libc::sigaction>();
                libc::sigaction(sig, &act, prev);
            }
        }
    });
}

/// An alternate signal stack owned by the current thread, if it had none.
pub(crate) struct AltStack {
    base: *mut libc::c_void,
    len: usize,
}

const ALT_STACK_SIZE: usize = 64 * 1024;

impl AltStack {
    /// Gives the current thread an alternate signal stack unless it already has one (std's
    /// threads normally do).
    pub(crate) fn ensure() -> Option<AltStack> {
        // SAFETY: querying the current alternate stack with a null new-stack pointer.
        unsafe {
            let mut old: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(std::ptr::null(), &mut old);
            if old.ss_flags & libc::SS_DISABLE == 0 {
                return None;
            }
            let len = ALT_STACK_SIZE + stack::PAGE;
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return None;
            }
            libc::mprotect(base, stack::PAGE, libc::PROT_NONE);
            let st = libc::stack_t {
                ss_sp: base.cast::<u8>().add(stack::PAGE).cast(),
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            libc::sigaltstack(&st, std::ptr::null_mut());
            Some(AltStack { base, len })
        }
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: this thread installed the alternate stack and is not running on it (we are
        // in ordinary thread code); disable it before unmapping it.
        unsafe {
            let st = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&st, std::ptr::null_mut());
            libc::munmap(self.base, self.len);
        }
    }
}

/// Writes `s` to stderr with one `write(2)`-loop; async-signal-safe.
pub(crate) fn write_stderr(s: &[u8]) {
    let mut off = 0;
    while off < s.len() {
        // SAFETY: writing initialised bytes from a live slice.
        let n = unsafe { libc::write(2, s[off..].as_ptr().cast(), s.len() - off) };
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}

/// Formats `n` in decimal into `buf`, returning the digits.
pub(crate) fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(size) = stack::guard_hit(addr) {
        // A goroutine refused growth hit the runtime's limit; any other ran off the stack it
        // was on without a check (plain code), whose size is the limit it hit.
        let refused = HOOK.get().and_then(|h| (h.refused_limit)());
        let mut a = [0u8; 20];
        write_stderr(b"runtime: goroutine stack exceeds ");
        write_stderr(fmt_u64(refused.unwrap_or(size) as u64, &mut a));
        write_stderr(b"-byte limit\n");
        if refused.is_some() {
            write_stderr(b"runtime: raise it with gort::debug::set_max_stack\n");
        } else {
            write_stderr(
                b"runtime: raise it with gort::Builder::stack_size (every goroutine) or \
                  gort::GoBuilder::stack_size (one goroutine), or let the recursion grow: \
                  #[gort::func] frames and gort::maybe_grow calls continue on a further stack\n",
            );
        }
        write_stderr(b"fatal error: stack overflow\n");
        if let Some(h) = HOOK.get() {
            (h.describe_goroutine)();
        }
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(2) };
    }
    let i = if sig == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: PREV[i] was initialised by `install` before this handler could run.
    let prev = unsafe { (*std::ptr::addr_of!(PREV[i])).assume_init() };
    if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction runs again and the
        // kernel applies the default (core dump) action.
        // SAFETY: resetting a signal disposition is async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes only the signal number.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        let mut b = [0u8; 20];
        assert_eq!(fmt_u64(0, &mut b), b"0");
        assert_eq!(fmt_u64(262144, &mut b), b"262144");
        assert_eq!(fmt_u64(u64::MAX, &mut b), b"18446744073709551615");
    }
}
