//! The fast unwinder: a cache of each return address's unwind rule, under Rust panics.
//!
//! A panic that `recover` (or `catch_unwind`) stops costs, with libgcc's unwinder, about
//! 1,700 ns here, and 93 % of it is libgcc re-deriving facts that never change for a return
//! address: it finds the FDE, parses the CIE, runs the CFA program and calls the personality
//! for every frame, twice per panic (search, then cleanup). This module keeps those facts per
//! return address, the *rule* (how to step to the caller, and what the frame's landing pad does
//! with a Rust panic), and walks the stack with them.
//!
//! It owns two symbols of the executable, `_Unwind_RaiseException` and `_Unwind_Resume`
//! (`asm.rs`): std's panic and the compiler's landing pads call them, and a static definition
//! in the executable wins over libgcc_s's for those calls (and only those: shared objects keep
//! calling libgcc). Each stub either unwinds with cached rules (`walk.rs`) or jumps to libgcc's
//! own function with every register as it was at the call, so that for libgcc the stub was
//! never there.
//!
//! The fast path takes an exception only when all of these hold, and otherwise hands it to
//! libgcc *before any side effect*, so behaviour there is exactly libgcc's:
//! - it is a Rust panic (std's exception class), not a foreign or a forced unwind;
//! - every frame up to the handler lies in the main executable, has a plain CFI rule (the CFA
//!   from `rsp` or `rbp` plus an offset; callee-saved registers and the return address saved
//!   at offsets from it; nothing else, no signal frame, no `DW_CFA_GNU_args_size`), and no
//!   personality or std's Rust personality (`cfi.rs` derives and checks it with `gimli`);
//! - each frame's LSDA entry for the call site is a plain one: no landing pad, a cleanup, or a
//!   catch-all (`catch_unwind`); a filter, a missing entry (a `nounwind` call: abort) or an
//!   unusual encoding goes to libgcc, which does what std expects.
//!
//! The landing pads stay the compiler's own: the walk lands where std's personality would
//! (`rax` the exception, `rdx` 0, callee-saved registers and `rsp` as at the call), and a
//! cleanup pad's `_Unwind_Resume` continues the walk. An exception the fast path owns is marked
//! in its `private_1` word (where libgcc keeps a forced unwind's stop function, so the mark is
//! a stop function that aborts loudly if libgcc ever meets it); `private_2` holds the handler
//! frame's identity as libgcc's phase 2 expects it (its stack pointer at the call), so that a cleanup whose resume point has no usable rule
//! hands the rest of the unwind to libgcc with the mark cleared.
//!
//! Start-up (`init`, from the runtime's process set-up) finds the executable's
//! `.eh_frame_hdr`, takes std's personality from a probe function's FDE, and panics once
//! through a probe with a cleanup and a catch: unless that panic took the fast path, lands
//! where it should, and ran the cleanup, the fast path stays off (and a debug build says why).
//! `GORT_UNWIND=libgcc` forces libgcc (for bug reports and the benchmarks' "off" rows). Debug
//! builds compare every fast walk with libgcc's own (`_Unwind_Backtrace`) and abort on a
//! difference.
//!
//! The fast path exists on x86-64 Linux with glibc and a dynamically linked libgcc_s, without
//! the `sanitizer` feature (AddressSanitizer intercepts `_Unwind_RaiseException` itself); on
//! every other target this module is `stats` and a no-op `init`. docs/defer-panic-recover.md,
//! "The fast unwinder", has the diagrams.

#[cfg(all(
    target_arch = "x86_64",
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static"),
    not(feature = "sanitizer")
))]
mod imp {
    pub(super) mod asm;
    pub(super) mod cache;
    pub(super) mod cfi;
    pub(super) mod walk;
    pub(crate) use walk::{counts, init};
}

/// Elsewhere: no fast path, nothing to count.
#[cfg(not(all(
    target_arch = "x86_64",
    target_os = "linux",
    target_env = "gnu",
    not(target_feature = "crt-static"),
    not(feature = "sanitizer")
)))]
mod imp {
    pub(crate) fn init() {}
    pub(crate) fn counts() -> super::Counts {
        super::Counts::default()
    }
}

/// Turns the fast path on for the process, once (see the module doc). Cheap after the first
/// call.
pub(crate) use imp::init;

/// The process's counters so far.
pub(crate) use imp::counts;

/// Counters of the unwinds the fast path took and handed to libgcc; see
/// [`debug::unwind_stats`](crate::debug::unwind_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) enabled: bool,
    pub(crate) fast: u64,
    pub(crate) handed_over: u64,
}
