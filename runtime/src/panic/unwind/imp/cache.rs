//! The rule cache: for each return address seen in a panic, its frame's [`Rule`] (or the
//! knowledge that it has none the fast path can use). Read without locks by every walk;
//! filled under one lock by `cfi.rs` on a miss.
//!
//! # Invariants
//! - A slot's `key` goes from 0 to a return address once, with a `Release` store, after its
//!   `rule` was written; it never changes again, nor does the rule. A reader that sees the key
//!   (`Acquire`) sees the rule complete.
//! - Only the holder of [`FILL`](super::cfi) writes slots, so two writers never race for one.
//! - The table never evicts: a program's panic paths have a few hundred return addresses.
//!   An address whose probe run is full is not cached, and its frame goes to libgcc (correct,
//!   only slower): walks hold `&'static` rules, never copies.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A callee-saved register whose value the frame does not change (no save slot).
pub(crate) const SAME: i32 = i32::MIN;

/// What a frame's landing pad does with a Rust panic at one call site (std's personality's
/// `EHAction`, minus the kinds the fast path hands to libgcc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// No landing pad: step to the caller.
    Continue,
    /// A cleanup (drops, deferred calls): land, and it resumes the unwind.
    Cleanup,
    /// A catch-all (`catch_unwind`): the handler; the unwind ends there.
    Catch,
}

/// How to step from a frame to its caller, and what the frame does with the panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The CFA is `rbp + cfa_off` (else `rsp + cfa_off`).
    pub(crate) cfa_rbp: bool,
    pub(crate) cfa_off: i32,
    /// The return address is saved at `CFA + ra_off`.
    pub(crate) ra_off: i32,
    /// Where `rbx, rbp, r12..r15` are saved, as offsets from the CFA ([`SAME`]: not saved).
    pub(crate) saved: [i32; 6],
    pub(crate) action: Action,
    /// The landing pad, for `Cleanup` and `Catch`.
    pub(crate) lpad: usize,
}

const SLOTS: usize = 4096;
const PROBES: usize = 16;

#[repr(align(64))]
struct Slot {
    key: AtomicUsize,
    /// `None`: the address has no rule the fast path can use.
    rule: UnsafeCell<Option<Rule>>,
}

// SAFETY: `rule` is written once, before `key` publishes it, by the fill lock's holder only,
// and read only after `key` was seen (the module invariants).
unsafe impl Sync for Slot {}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        key: AtomicUsize::new(0),
        rule: UnsafeCell::new(None),
    }
}; SLOTS];

fn home(ip: usize) -> usize {
    ip.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - SLOTS.trailing_zeros())
}

/// The cached answer for the return address `ip`: `Some(Some(rule))`, `Some(None)` (known to
/// have no usable rule), or `None` (not cached).
#[inline]
pub(crate) fn get(ip: usize) -> Option<&'static Option<Rule>> {
    let h = home(ip);
    for i in 0..PROBES {
        let slot = &TABLE[(h + i) & (SLOTS - 1)];
        let key = slot.key.load(Ordering::Acquire);
        if key == ip {
            // SAFETY: the key was published after the rule, which never changes again.
            return Some(unsafe { &*slot.rule.get() });
        }
        if key == 0 {
            return None;
        }
    }
    None
}

/// Caches `rule` for `ip`; false when its probe run is full.
///
/// # Safety
/// The caller holds the fill lock (`cfi::FILL`), and `ip` is not 0.
pub(crate) unsafe fn put(ip: usize, rule: Option<Rule>) -> bool {
    let h = home(ip);
    for i in 0..PROBES {
        let slot = &TABLE[(h + i) & (SLOTS - 1)];
        match slot.key.load(Ordering::Relaxed) {
            0 => {
                // SAFETY: an empty slot has no reader of its rule (its key is 0), and only
                // the fill lock's holder writes.
                unsafe { *slot.rule.get() = rule };
                slot.key.store(ip, Ordering::Release);
                return true;
            }
            k if k == ip => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_spreads_nearby_addresses() {
        let homes: std::collections::HashSet<usize> =
            (0..64).map(|i| home(0x5555_0000 + i * 5)).collect();
        assert!(homes.len() > 48, "{} homes for 64 addresses", homes.len());
        assert!(homes.iter().all(|&h| h < SLOTS));
    }
}
