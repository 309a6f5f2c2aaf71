//! `RwLock<T>`: Go's `sync.RWMutex` (writer-preferring) around a value.
//!
//! `reader_count` counts readers; a writer subtracts `MAX_READERS` from it, which both
//! announces the writer (new readers see a negative count and wait on `reader_sem`) and tells
//! it how many readers are still inside (moved to `reader_wait`; the last of them releases
//! `writer_sem`). Writers exclude each other with a `Mutex`.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, Ordering};

use super::mutex::{Mutex, MutexGuard};
use super::sema::Sema;
use crate::sched::WaitReason;

const MAX_READERS: i32 = 1 << 30;

/// A reader-writer lock that parks goroutines (Go's `sync.RWMutex`, holding the value it
/// protects). Writers are preferred: once a writer waits, new readers wait behind it.
///
/// # Example
///
/// ```
/// gort::run(|| {
///     let cfg = gort::RwLock::new(String::from("v1"));
///     assert_eq!(*cfg.read(), "v1");
///     cfg.write().push_str("+patch");
///     assert_eq!(*cfg.read(), "v1+patch");
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    w: Mutex<()>,
    writer_sem: Sema,
    reader_sem: Sema,
    reader_count: AtomicI32,
    reader_wait: AtomicI32,
    data: UnsafeCell<T>,
}

// SAFETY: readers share `&T` (hence `Sync`), a writer has `&mut T` alone (hence `Send`).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s value; releases it when dropped.
///
/// ```
/// let l = gort::RwLock::new(3);
/// let r = l.read(); // Go: l.RLock()
/// assert_eq!(*r, 3);
/// assert!(l.try_write().is_none()); // a reader is inside
/// drop(r); // Go: l.RUnlock()
/// assert!(l.try_write().is_some());
/// ```
pub struct RwLockReadGuard<'a, T: ?Sized> {
    l: &'a RwLock<T>,
}

/// Exclusive access to an [`RwLock`]'s value; releases it when dropped.
///
/// ```
/// let l = gort::RwLock::new(vec![1]);
/// let mut w = l.write(); // Go: l.Lock()
/// w.push(2);
/// assert!(l.try_read().is_none()); // the writer excludes readers
/// drop(w); // Go: l.Unlock()
/// assert_eq!(*l.read(), [1, 2]);
/// ```
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    l: &'a RwLock<T>,
    _w: MutexGuard<'a, ()>,
}

// SAFETY: releasing is atomic and valid from any thread; a read guard gives `&T`.
unsafe impl<T: ?Sized + Sync> Send for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: releasing is atomic and valid from any thread; a write guard gives `&mut T`.
unsafe impl<T: ?Sized + Send> Send for RwLockWriteGuard<'_, T> {}
// SAFETY: a shared write guard gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `v`.
    ///
    /// ```
    /// static LEVEL: gort::RwLock<u8> = gort::RwLock::new(1); // `const`: a static works
    /// *LEVEL.write() = 2;
    /// assert_eq!(*LEVEL.read(), 2);
    /// ```
    pub const fn new(v: T) -> RwLock<T> {
        RwLock {
            w: Mutex::new(()),
            writer_sem: Sema::new(),
            reader_sem: Sema::new(),
            reader_count: AtomicI32::new(0),
            reader_wait: AtomicI32::new(0),
            data: UnsafeCell::new(v),
        }
    }

    /// The value, consuming the lock.
    ///
    /// ```
    /// let l = gort::RwLock::new(String::from("a"));
    /// l.write().push('b');
    /// assert_eq!(l.into_inner(), "ab");
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access (Go's `RLock`), waiting behind a writer.
    ///
    /// ```
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let l = Arc::new(gort::RwLock::new(10));
    ///     let r = l.read();
    ///     let l2 = l.clone();
    ///     let other = gort::spawn(move || *l2.read()); // readers share: no wait
    ///     assert_eq!(other.join() + *r, 20);
    /// });
    /// ```
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        if self.reader_count.fetch_add(1, Ordering::Acquire) + 1 < 0 {
            // A writer is pending: wait for it.
            self.reader_sem.acquire(WaitReason::Semacquire);
        }
        RwLockReadGuard { l: self }
    }

    /// Exclusive access (Go's `Lock`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// gort::run(|| {
    ///     let l = Arc::new(gort::RwLock::new(Vec::new()));
    ///     let wg = gort::WaitGroup::new();
    ///     for i in 0..4 {
    ///         let l = l.clone();
    ///         wg.go(move || l.write().push(i)); // one writer at a time
    ///     }
    ///     wg.wait();
    ///     assert_eq!(l.read().len(), 4);
    /// });
    /// ```
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        let w = self.w.lock();
        // Announce the writer; `r` readers are still inside.
        let r = self.reader_count.fetch_sub(MAX_READERS, Ordering::Acquire);
        if r != 0 && self.reader_wait.fetch_add(r, Ordering::Acquire) + r != 0 {
            self.writer_sem.acquire(WaitReason::Semacquire);
        }
        RwLockWriteGuard { l: self, _w: w }
    }

    /// Shared access if it is free now (Go's `TryRLock`): `None` while a writer holds the
    /// lock or waits for it. Never parks.
    ///
    /// ```
    /// let l = gort::RwLock::new(1);
    /// let r = l.try_read().expect("free");
    /// assert!(l.try_read().is_some(), "readers share");
    /// assert!(l.try_write().is_none(), "a reader is inside");
    /// drop(r);
    /// let w = l.try_write().expect("free again");
    /// assert!(l.try_read().is_none(), "a writer is inside");
    /// drop(w);
    /// ```
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let mut c = self.reader_count.load(Ordering::Relaxed);
        loop {
            if c < 0 {
                return None; // a writer holds it or waits
            }
            match self.reader_count.compare_exchange_weak(
                c,
                c + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(RwLockReadGuard { l: self }),
                Err(now) => c = now,
            }
        }
    }

    /// Exclusive access if it is free now (Go's `TryLock`): `None` while anyone holds the
    /// lock or a writer waits for it. Never parks.
    ///
    /// ```
    /// let l = gort::RwLock::new(vec![1]);
    /// if let Some(mut w) = l.try_write() {
    ///     w.push(2);
    /// }
    /// assert_eq!(*l.read(), [1, 2]);
    /// ```
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let w = self.w.try_lock()?;
        // Free only if no reader is inside: announce the writer in the same step.
        self.reader_count
            .compare_exchange(0, -MAX_READERS, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| RwLockWriteGuard { l: self, _w: w })
    }

    /// Go's `RUnlock` without a guard (see [`Mutex::force_unlock`](crate::Mutex::force_unlock)):
    /// releasing a read lock that is not held is a fatal error (`fatal error: sync: RUnlock of
    /// unlocked RWMutex`), as in Go.
    ///
    /// # Safety
    /// The lock must be read-locked by a guard that was forgotten, and that guard's lock is
    /// given up here.
    ///
    /// ```
    /// let l = gort::RwLock::new(1);
    /// std::mem::forget(l.read());
    /// // SAFETY: read-locked above; the guard was forgotten.
    /// unsafe { l.force_unlock_read() };
    /// assert_eq!(*l.write(), 1);
    /// ```
    #[track_caller]
    pub unsafe fn force_unlock_read(&self) {
        self.read_unlock()
    }

    /// Go's `Unlock` without a guard: releasing a write lock that is not held is a fatal
    /// error (`fatal error: sync: Unlock of unlocked RWMutex`), as in Go.
    ///
    /// # Safety
    /// The lock must be write-locked by a guard that was forgotten.
    ///
    /// ```
    /// let l = gort::RwLock::new(1);
    /// std::mem::forget(l.write());
    /// // SAFETY: write-locked above; the guard was forgotten.
    /// unsafe { l.force_unlock_write() };
    /// assert_eq!(*l.read(), 1);
    /// ```
    #[track_caller]
    pub unsafe fn force_unlock_write(&self) {
        self.write_unlock_raw();
        // SAFETY: per the contract, the forgotten write guard held `w`.
        unsafe { self.w.force_unlock() };
    }

    #[track_caller]
    fn read_unlock(&self) {
        let r = self.reader_count.fetch_sub(1, Ordering::Release) - 1;
        if r < 0 {
            if r + 1 == 0 || r + 1 == -MAX_READERS {
                crate::panic::throw("sync: RUnlock of unlocked RWMutex");
            }
            // A writer waits: the last reader out lets it in.
            if self.reader_wait.fetch_sub(1, Ordering::Release) - 1 == 0 {
                self.writer_sem.release();
            }
        }
    }

    #[track_caller]
    fn write_unlock_raw(&self) {
        // Let readers in again; wake the ones that queued behind this writer.
        let r = self.reader_count.fetch_add(MAX_READERS, Ordering::Release) + MAX_READERS;
        if r >= MAX_READERS {
            crate::panic::throw("sync: Unlock of unlocked RWMutex");
        }
        for _ in 0..r {
            self.reader_sem.release();
        }
    }

    /// The value, through `&mut` (no locking needed).
    ///
    /// ```
    /// let mut l = gort::RwLock::new(1);
    /// *l.get_mut() = 5; // `&mut l`: nobody else can hold the lock
    /// assert_eq!(*l.read(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard excludes writers.
        unsafe { &*self.l.data.get() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// The guarded value's `Display`, as std's guards have.
///
/// ```
/// gort::run(|| {
///     let l = gort::RwLock::new("text");
///     assert_eq!(format!("{}", l.read()), "text");
///     assert_eq!(format!("{}", l.write()), "text");
/// });
/// ```
impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.l.read_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard excludes everyone else.
        unsafe { &*self.l.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard excludes everyone else.
        unsafe { &mut *self.l.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        // The writer mutex (`_w`) is released after this, as in Go.
        self.l.write_unlock_raw();
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RwLock { .. }")
    }
}
