//! `Mutex<T>`: Go's `sync.Mutex` algorithm (normal and starvation modes) around a value.
//!
//! State word (Go's layout): bit 0 locked, bit 1 a waiter was woken, bit 2 starving, and the
//! number of waiters above. In normal mode waiters queue FIFO but a woken waiter competes with
//! newly arriving goroutines, which usually win (they are already running): good throughput.
//! A waiter that failed to get the lock for more than 1 ms switches the mutex to starvation
//! mode: the unlocker hands ownership straight to the waiter at the front of the queue and
//! newcomers queue at the tail without trying. The mutex returns to normal mode when the
//! waiter that receives it is the last one or waited less than 1 ms.
//!
//! Waiters park on a semaphore (`sema.rs`) in the mutex's own memory: goroutines park, plain
//! threads block. A goroutine may hold the guard across a blocking call and resume on another
//! thread; unlocking from there is fine (it is an atomic operation, not a pthread mutex).

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use super::sema::Sema;
use crate::sched::WaitReason;

const LOCKED: i32 = 1;
const WOKEN: i32 = 2;
const STARVING: i32 = 4;
const WAITER_SHIFT: i32 = 3;
/// Go's `starvationThresholdNs`.
const STARVATION: Duration = Duration::from_millis(1);

/// A mutual-exclusion lock that parks goroutines, not threads (Go's `sync.Mutex`, holding the
/// value it protects). Not reentrant; no poisoning (as in Go, a panic while locked unlocks it
/// when the guard drops during the unwind).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// gort::run(|| {
///     let total = Arc::new(gort::Mutex::new(0));
///     let wg = gort::WaitGroup::new();
///     for i in 0..10 {
///         wg.add(1);
///         let (t, wg) = (total.clone(), wg.clone());
///         gort::go!(move || {
///             *t.lock() += i;
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(*total.lock(), 45);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicI32,
    sema: Sema,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one holder at a time access to `data`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Access to a locked [`Mutex`]'s value; unlocks when dropped.
///
/// ```
/// let m = gort::Mutex::new(String::new());
/// {
///     let mut g = m.lock();
///     g.push_str("held"); // the value, through DerefMut
///     assert!(m.try_lock().is_none());
/// } // Go: mu.Unlock(), when the guard goes
/// assert_eq!(*m.lock(), "held");
/// ```
pub struct MutexGuard<'a, T: ?Sized> {
    m: &'a Mutex<T>,
}

// SAFETY: unlocking is an atomic operation, valid from any thread (goroutines migrate).
unsafe impl<T: ?Sized + Send> Send for MutexGuard<'_, T> {}
// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `v`.
    ///
    /// ```
    /// // `const`: a static works, like Go's package-level `var mu sync.Mutex`.
    /// static HITS: gort::Mutex<u32> = gort::Mutex::new(0);
    /// *HITS.lock() += 1;
    /// assert_eq!(*HITS.lock(), 1);
    /// ```
    pub const fn new(v: T) -> Mutex<T> {
        Mutex {
            state: AtomicI32::new(0),
            sema: Sema::new(),
            data: UnsafeCell::new(v),
        }
    }

    /// The value, consuming the mutex.
    ///
    /// ```
    /// let m = gort::Mutex::new(vec![1]);
    /// m.lock().push(2);
    /// assert_eq!(m.into_inner(), [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking the goroutine (or blocking the thread) while another holds it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let m = Arc::new(gort::Mutex::new(0));
    ///     let guard = m.lock(); // Go: mu.Lock()
    ///     let m2 = m.clone();
    ///     let h = gort::spawn(move || *m2.lock() + 1); // parks until the guard goes
    ///     gort::yield_now();
    ///     assert!(!h.is_finished());
    ///     drop(guard); // Go: mu.Unlock()
    ///     assert_eq!(h.join(), 1);
    /// });
    /// ```
    #[inline]
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard { m: self }
    }

    /// Locks if that does not block (Go's `TryLock`).
    ///
    /// ```
    /// let m = gort::Mutex::new(1);
    /// let g = m.try_lock().expect("unlocked");
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let old = self.state.load(Ordering::Relaxed);
        if old & (LOCKED | STARVING) != 0 {
            return None;
        }
        self.state
            .compare_exchange(old, old | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { m: self })
    }

    /// The value, through `&mut` (no locking needed).
    ///
    /// ```
    /// let mut m = gort::Mutex::new(1);
    /// *m.get_mut() += 1; // `&mut m`: nobody else can hold the lock
    /// assert_eq!(*m.lock(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Go's `lockSlow`.
    #[cold]
    #[track_caller]
    fn lock_slow(&self) {
        let mut wait_start: Option<Instant> = None;
        let mut starving = false;
        let mut awoke = false;
        let mut iter = 0;
        // Go's `runtime_canSpin`: a few rounds, only with another processor to run the holder.
        let multi = crate::sched::with_current_shared(|s| s.procs.len() > 1).unwrap_or(false);
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin a little while the holder runs, unless starving (ownership is handed off).
            if old & (LOCKED | STARVING) == LOCKED && multi && iter < 4 {
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                for _ in 0..30 {
                    std::hint::spin_loop();
                }
                iter += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += 1 << WAITER_SHIFT;
            }
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                if new & WOKEN == 0 {
                    crate::panic::throw("sync: inconsistent mutex state");
                }
                new &= !WOKEN;
            }
            match self
                .state
                .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & (LOCKED | STARVING) == 0 {
                        return; // locked with the CAS
                    }
                    let lifo = wait_start.is_some();
                    let start = *wait_start.get_or_insert_with(Instant::now);
                    self.sema.acquire_at(WaitReason::Semacquire, lifo);
                    starving = starving || start.elapsed() > STARVATION;
                    old = self.state.load(Ordering::Relaxed);
                    if old & STARVING != 0 {
                        // Handed off: we own it; fix the state.
                        if old & (LOCKED | WOKEN) != 0 || old >> WAITER_SHIFT == 0 {
                            crate::panic::throw("sync: inconsistent mutex state");
                        }
                        let mut delta = LOCKED - (1 << WAITER_SHIFT);
                        if !starving || old >> WAITER_SHIFT == 1 {
                            delta -= STARVING;
                        }
                        self.state.fetch_add(delta, Ordering::Acquire);
                        return;
                    }
                    awoke = true;
                    iter = 0;
                }
                Err(cur) => old = cur,
            }
        }
    }

    /// Go's `Unlock` without a guard: for a lock whose guard was given up with
    /// [`std::mem::forget`] (Go code that locks in one function and unlocks in another).
    ///
    /// As in Go, unlocking a mutex that is not locked is a fatal error (`fatal error: sync:
    /// unlock of unlocked mutex`, exit status 2), not a panic: no deferred call runs and
    /// `recover` cannot stop it.
    ///
    /// # Safety
    /// The mutex must be locked and no guard of it may be used afterwards (the caller takes
    /// over the lock a forgotten guard held).
    ///
    /// ```
    /// let m = gort::Mutex::new(5);
    /// std::mem::forget(m.lock());
    /// // SAFETY: locked above; the guard was forgotten.
    /// unsafe { m.force_unlock() };
    /// assert_eq!(*m.lock(), 5);
    /// ```
    #[track_caller]
    pub unsafe fn force_unlock(&self) {
        self.unlock()
    }

    /// Go's `Unlock`.
    #[inline]
    #[track_caller]
    fn unlock(&self) {
        let new = self.state.fetch_sub(LOCKED, Ordering::Release) - LOCKED;
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    #[cold]
    #[track_caller]
    fn unlock_slow(&self, new: i32) {
        if (new + LOCKED) & LOCKED == 0 {
            crate::panic::throw("sync: unlock of unlocked mutex");
        }
        if new & STARVING == 0 {
            let mut old = new;
            loop {
                // No waiters, or one already woken or the lock taken: nobody to wake.
                if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                    return;
                }
                let new = (old - (1 << WAITER_SHIFT)) | WOKEN;
                match self
                    .state
                    .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => {
                        self.sema.release();
                        return;
                    }
                    Err(cur) => old = cur,
                }
            }
        } else {
            // Starving: hand ownership to the next waiter and let it run now.
            self.sema.release();
            if crate::sched::current_g().is_some() {
                crate::sched::yield_now();
            }
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.m.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.m.unlock();
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    pub(crate) fn mutex(&self) -> &'a Mutex<T> {
        self.m
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Some(g) => f.debug_struct("Mutex").field("data", &&*g).finish(),
            None => f.write_str("Mutex { <locked> }"),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// The guarded value's `Display`, as std's `MutexGuard` has.
///
/// ```
/// gort::run(|| {
///     let m = gort::Mutex::new(7);
///     assert_eq!(format!("{}", m.lock()), "7");
/// });
/// ```
impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
