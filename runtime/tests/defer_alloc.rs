//! A `defer!` in steady state allocates nothing: open-coded slots live in the caller's stack
//! frame, and the goroutine's defer list reuses its records.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

/// Counts allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised thread-local
// without a destructor, so it may be touched from inside the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

fn bump(x: &Cell<u64>) {
    x.set(x.get() + 1);
}

#[gort::func]
fn open_coded(x: &Cell<u64>) {
    defer!(bump(x));
    defer!(move || bump(x));
}

#[gort::func]
fn on_the_list(x: &Cell<u64>, n: usize) {
    for _ in 0..n {
        defer!(bump(x));
    }
}

#[gort::func]
fn recovers(x: &Cell<u64>, static_str: bool) {
    defer!(move || {
        if gort::recover().is_some() {
            bump(x);
        }
    });
    if static_str {
        panic!("static text");
    }
    std::panic::panic_any(1u8);
}

#[test]
fn steady_state_defers_do_not_allocate() {
    gort::Builder::new().procs(1).run(|| {
        let x = Cell::new(0);
        // Warm up: the defer list grows to its working size once.
        open_coded(&x);
        on_the_list(&x, 16);
        let before = allocs();
        for _ in 0..1000 {
            open_coded(black_box(&x));
            on_the_list(black_box(&x), 16);
        }
        let after = allocs();
        assert_eq!(x.get(), 2 + 16 + 1000 * (2 + 16));
        assert_eq!(after - before, 0, "defers allocated");
    });
}

#[test]
#[cfg_attr(
    feature = "sanitizer",
    ignore = "ASan builds std with other allocations"
)]
fn recover_allocates_only_what_std_does() {
    // RUST_BACKTRACE makes every panic capture a backtrace (and allocate): run in a child
    // process without it.
    if !support::is_child() {
        let out = support::run_child("recover_allocates_only_what_std_does", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    gort::Builder::new().procs(1).run(|| {
        let x = Cell::new(0);
        // std allocates the payload's box and its exception object (2); gort copies the
        // location's file name (1) and keeps the text of a recovered value for a later crash
        // report (1, none for a `&'static str`). The message text the hook copies goes into
        // two buffers a goroutine reuses (two panics warm them up).
        for (static_str, most) in [(true, 3.0), (false, 4.0)] {
            recovers(&x, static_str);
            recovers(&x, static_str);
            let before = allocs();
            for _ in 0..100 {
                recovers(black_box(&x), static_str);
            }
            let per = (allocs() - before) as f64 / 100.0;
            assert!(per <= most, "{per} allocations per panic+recover");
        }
        assert_eq!(x.get(), 204);
    });
}
