//! The two entry points the executable's unwinds call, and the jump onto a landing pad.
//!
//! `_Unwind_RaiseException(exc)` and `_Unwind_Resume(exc)` are defined here, hidden, so std's
//! `panic` and the compiler's landing pads in this executable call them instead of libgcc_s's.
//! Each stub stores the caller's frame as a [`Regs`] (the callee-saved registers, the stack
//! pointer the caller has once the call returns, and the return address) on its own stack and
//! calls the Rust half in `walk.rs`. That half either never returns (it jumped onto a landing
//! pad) or returns to hand the exception to libgcc: the stub then puts `rdi` and `rsp` back as
//! they were at entry and jumps to libgcc's function, whose address `walk.rs` has resolved
//! into [`LIBGCC_RAISE`] / [`LIBGCC_RESUME`]. Callee-saved registers survive the Rust call by
//! the ABI, so libgcc sees exactly the call std or the landing pad made.
//!
//! The stubs carry CFI, so that libgcc can unwind through them (the debug cross-check walks
//! from inside `walk.rs`, and a backtrace taken there must reach the panicking frames).

use std::sync::atomic::AtomicUsize;

/// A frame's registers as the unwinder needs them: the ones a landing pad expects restored.
/// The field order is the stubs' and [`land`]'s memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Regs {
    /// `rbx, rbp, r12, r13, r14, r15`, in this order (DWARF 3, 6, 12, 13, 14, 15).
    pub(crate) saved: [usize; 6],
    /// The stack pointer inside the frame (at the call site, after the call returned).
    pub(crate) rsp: usize,
    /// The return address into the frame (or, to land, the landing pad).
    pub(crate) ip: usize,
}

/// The index of `rbp` in [`Regs::saved`].
pub(crate) const RBP: usize = 1;

/// libgcc_s's `_Unwind_RaiseException`, resolved before the first hand-over.
pub(crate) static LIBGCC_RAISE: AtomicUsize = AtomicUsize::new(0);
/// libgcc_s's `_Unwind_Resume`, resolved before the first hand-over.
pub(crate) static LIBGCC_RESUME: AtomicUsize = AtomicUsize::new(0);

// The stub frame: 72 bytes below the return address (rsp is 16-byte aligned at the call into
// Rust): [0, 64) the Regs, [64, 72) the exception pointer. The caller's rsp after the return is
// entry rsp + 8 = frame + 80.
std::arch::global_asm!(
    // One stub shape for both entry points: `name`, the Rust half `rust`, libgcc's `next`.
    ".macro gort_unwind_stub name, rust, next",
    ".pushsection .text.\\name,\"ax\",@progbits",
    ".globl \\name",
    ".hidden \\name",
    ".type \\name,@function",
    ".p2align 4",
    "\\name:",
    ".cfi_startproc",
    "sub rsp, 72",
    ".cfi_adjust_cfa_offset 72",
    "mov [rsp], rbx",
    "mov [rsp + 8], rbp",
    "mov [rsp + 16], r12",
    "mov [rsp + 24], r13",
    "mov [rsp + 32], r14",
    "mov [rsp + 40], r15",
    "lea rax, [rsp + 80]",
    "mov [rsp + 48], rax",
    "mov rax, [rsp + 72]",
    "mov [rsp + 56], rax",
    "mov [rsp + 64], rdi",
    "mov rsi, rsp",
    "call \\rust",
    "mov rdi, [rsp + 64]",
    "add rsp, 72",
    ".cfi_adjust_cfa_offset -72",
    "jmp qword ptr [rip + \\next]",
    ".cfi_endproc",
    ".size \\name, . - \\name",
    ".popsection",
    ".endm",
    "gort_unwind_stub _Unwind_RaiseException, {raise}, {libgcc_raise}",
    "gort_unwind_stub _Unwind_Resume, {resume}, {libgcc_resume}",
    ".purgem gort_unwind_stub",
    //
    // gort_unwind_land(regs: *const Regs /* rdi */, exc /* rsi */) -> !
    ".pushsection .text.gort_unwind_land,\"ax\",@progbits",
    ".globl gort_unwind_land",
    ".hidden gort_unwind_land",
    ".type gort_unwind_land,@function",
    ".p2align 4",
    "gort_unwind_land:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "mov rax, rsi",
    "xor edx, edx",
    "mov rbx, [rdi]",
    "mov rbp, [rdi + 8]",
    "mov r12, [rdi + 16]",
    "mov r13, [rdi + 24]",
    "mov r14, [rdi + 32]",
    "mov r15, [rdi + 40]",
    "mov rcx, [rdi + 56]",
    "mov rsp, [rdi + 48]",
    "jmp rcx",
    ".cfi_endproc",
    ".size gort_unwind_land, . - gort_unwind_land",
    ".popsection",
    raise = sym super::walk::fast_raise,
    resume = sym super::walk::fast_resume,
    libgcc_raise = sym LIBGCC_RAISE,
    libgcc_resume = sym LIBGCC_RESUME,
);

extern "C" {
    fn gort_unwind_land(regs: *const Regs, exc: *mut u8) -> !;
}

/// Jumps onto the landing pad `regs.ip` in the frame `regs` describes, with `rax` = `exc` and
/// `rdx` = 0, as std's personality installs it.
///
/// # Safety
/// `regs` must be a live frame of the current stack, above the caller's own frames, as the
/// unwind rules computed it, with `ip` one of that frame's landing pads for the call site it
/// is stopped at; `exc` the exception being unwound.
pub(crate) unsafe fn land(regs: &Regs, exc: *mut u8) -> ! {
    // SAFETY: the caller's contract: the frames below `regs.rsp` (this one included) are
    // abandoned, and the pad finds the registers it expects.
    unsafe { gort_unwind_land(regs, exc) }
}
