//! The channel lock: a test-and-test-and-set spin lock.
//!
//! Channel critical sections are a few dozen instructions: they never park, block, or wake
//! anyone (wake-ups happen after the unlock). A spin lock fits them better than a parking mutex
//! whose unlock needs an atomic read-modify-write to check for sleepers: here the unlock is a
//! plain release store, which on x86 costs no locked instruction, and every channel operation
//! takes the lock once. Under contention a waiter spins with `spin_loop` hints, then yields
//! its thread to the OS (a lock holder descheduled by the OS must get the CPU back).

use std::sync::atomic::Ordering;

use crate::loom::AtomicBool;

pub(crate) struct SpinLock {
    locked: AtomicBool,
}

/// Spins before yielding the thread.
const SPINS: u32 = 64;

impl SpinLock {
    pub(crate) fn new() -> SpinLock {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0;
        loop {
            // Test first: spin on a shared read, not on a contended write.
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS && !cfg!(loom) {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    crate::loom::yield_thread();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// # Safety
    /// The caller holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_between_threads() {
        struct Shared {
            lock: SpinLock,
            n: std::cell::UnsafeCell<u64>,
        }
        // SAFETY: `n` is only touched under `lock`.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            lock: SpinLock::new(),
            n: std::cell::UnsafeCell::new(0),
        });
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        s.lock.lock();
                        // SAFETY: we hold the lock.
                        unsafe {
                            *s.n.get() += 1;
                            s.lock.unlock();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // SAFETY: every thread has finished.
        assert_eq!(unsafe { *s.n.get() }, 40_000);
    }
}
