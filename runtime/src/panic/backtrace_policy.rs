//! When a panic captures a backtrace (`RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`, as std reads
//! them).
//!
//! A backtrace must be taken where the panic starts: by the time an unwind reaches a frame,
//! the frames it passed are gone. Taking one costs about a stack walk (3 µs here), twice what
//! a panic and recover cost without it, and a recovered panic never prints it. gort cannot
//! know at the panic whether some deferred call will recover it, so it learns per site: once
//! a panic that started at a source location has been recovered, later panics there skip the
//! capture (the panic-as-control-flow case pays once). A site that crashes after being
//! recovered before gets a report that says its backtrace was skipped and why;
//! `GORT_BACKTRACE=always` captures at every panic.

use std::backtrace::Backtrace;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::value::PanicLocation;

/// Sites remembered as recovered (open addressing; a full table stops learning, which
/// only means more captures).
const SITES: usize = 512;
static RECOVERED: [AtomicU64; SITES] = [const { AtomicU64::new(0) }; SITES];

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const LEARN: u8 = 2;
const ALWAYS: u8 = 3;
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

fn mode() -> u8 {
    let m = MODE.load(Ordering::Relaxed);
    if m != UNKNOWN {
        return m;
    }
    let on = |v: std::ffi::OsString| v != "0";
    let wanted = match std::env::var_os("RUST_LIB_BACKTRACE") {
        Some(v) => on(v),
        None => std::env::var_os("RUST_BACKTRACE").is_some_and(on),
    };
    let always = std::env::var_os("GORT_BACKTRACE").is_some_and(|v| v == "always");
    let m = match (wanted, always) {
        (false, _) => OFF,
        (true, false) => LEARN,
        (true, true) => ALWAYS,
    };
    MODE.store(m, Ordering::Relaxed);
    m
}

/// Whether the environment asks for backtraces at all.
pub(crate) fn wanted() -> bool {
    mode() != OFF
}

fn key(l: &PanicLocation) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    l.hash(&mut h);
    h.finish() | 1
}

fn known(k: u64) -> bool {
    let mut i = k as usize % SITES;
    for _ in 0..SITES {
        match RECOVERED[i].load(Ordering::Relaxed) {
            0 => return false,
            v if v == k => return true,
            _ => i = (i + 1) % SITES,
        }
    }
    false
}

/// A panic that started at `l` was recovered.
pub(crate) fn recovered_at(l: &PanicLocation) {
    if mode() != LEARN {
        return;
    }
    let k = key(l);
    let mut i = k as usize % SITES;
    for _ in 0..SITES {
        match RECOVERED[i].compare_exchange(0, k, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(v) if v == k => return,
            Err(_) => i = (i + 1) % SITES,
        }
    }
}

/// The backtrace a panic starting at `l` takes now, if any.
pub(crate) fn capture_for(l: &PanicLocation) -> Option<Backtrace> {
    match mode() {
        OFF => None,
        LEARN if known(key(l)) => None,
        _ => Some(Backtrace::force_capture()),
    }
}
