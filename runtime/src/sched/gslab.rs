//! Goroutine records' memory: [`SlabRef`], the counted handle to a record ([`GRef`] is one for
//! a `Goroutine`), and [`Slab`], the chunks records are carved from (Go's `allg` records come
//! from its own heap, not `malloc`).
//!
//! # Why not `Arc<Goroutine>`
//!
//! A program that starts a million goroutines that stay (a server's connections) makes a
//! million records. Through `malloc`, each grows the allocating thread's glibc arena by a few
//! hundred bytes, and a non-main arena grows a page at a time with `mprotect`, which takes the
//! process's memory-map lock for writing: the other Ms' page faults and `madvise` calls queue
//! behind it (at P=2, a fifth of the context switches of `parked_create` were that). Records
//! carved from 256 KiB chunks cost one allocation per ~700 records, which glibc serves with a
//! mapping of its own (above its default `mmap` threshold; once a process has freed a larger
//! mapped block, glibc raises the threshold and serves chunks from the arena, one 256 KiB
//! growth per chunk), and sit next to each other for the scans that walk them (copy-out,
//! dumps, shutdown).
//!
//! # Ownership
//!
//! A `GRef` is what an `Arc<Goroutine>` was: a strong count in the record, `clone` adds one,
//! `drop` removes one and the last drops the record. Records are never freed while their
//! runtime runs (`allgs` holds one reference each); after shutdown, a record a user's wait
//! queue still holds lives until that reference goes.
//!
//! Invariants:
//! - a chunk's `live` counts the records carved from it and not yet dropped, plus one while
//!   it is the slab's current chunk; whoever takes it to zero frees the chunk;
//! - a record's address never changes, and `GRef::as_ptr` is the address of its `Goroutine`
//!   (the slot is `repr(C)` with the record first), so `from_raw(as_ptr)` finds the slot.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::mem::{align_of, size_of};
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::g::Goroutine;

/// A handle to a goroutine record.
pub(crate) type GRef = SlabRef<Goroutine>;

/// Bytes per chunk: above glibc's default `mmap` threshold (128 KiB), so a chunk is a mapping
/// of its own and growing the records never grows an arena.
const CHUNK_BYTES: usize = 256 * 1024;

/// The start of a chunk.
#[repr(C)]
struct ChunkHead {
    /// Records carved and not yet dropped, plus one for the slab while it carves here.
    live: AtomicUsize,
}

/// A record and its count, carved from a chunk.
#[repr(C)]
struct Slot<T> {
    /// First, so that a pointer to the record is a pointer to the slot.
    g: T,
    refs: AtomicUsize,
    chunk: NonNull<ChunkHead>,
}

fn chunk_layout<T>() -> Layout {
    Layout::from_size_align(CHUNK_BYTES, align_of::<Slot<T>>().max(64)).expect("a valid layout")
}

/// Offset of the first slot in a chunk.
fn first_slot<T>() -> usize {
    size_of::<ChunkHead>().next_multiple_of(align_of::<Slot<T>>())
}

/// Slots per chunk.
fn slots_per_chunk<T>() -> usize {
    (CHUNK_BYTES - first_slot::<T>()) / size_of::<Slot<T>>()
}

/// Drops one count of `chunk`, freeing it at zero.
///
/// # Safety
/// The caller owns one count of a chunk allocated by `Slab<T>::make`.
unsafe fn chunk_release<T>(chunk: NonNull<ChunkHead>) {
    // SAFETY: the caller's count keeps the chunk alive until this decrement.
    let head = unsafe { chunk.as_ref() };
    // Release: the dropped record's writes happen before the free (as in `Arc`'s drop).
    if head.live.fetch_sub(1, Ordering::Release) == 1 {
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero: no record and no carver refers to the chunk.
        unsafe { dealloc(chunk.as_ptr().cast(), chunk_layout::<T>()) };
    }
}

/// A counted handle to a record in a [`Slab`] (an `Arc` whose memory comes from the slab);
/// see the module docs.
pub(crate) struct SlabRef<T> {
    slot: NonNull<Slot<T>>,
}

// SAFETY: a `SlabRef` is an `Arc<T>` in all but its allocator, and `Arc<T>` is `Send` and
// `Sync` when `T` is both (the count is atomic).
unsafe impl<T: Send + Sync> Send for SlabRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for SlabRef<T> {}

impl<T> SlabRef<T> {
    /// The record's address (`Arc::as_ptr`).
    #[inline]
    pub(crate) fn as_ptr(this: &SlabRef<T>) -> *const T {
        this.slot.as_ptr().cast()
    }

    /// Gives up the handle, keeping its count (`Arc::into_raw`).
    #[inline]
    pub(crate) fn into_raw(this: SlabRef<T>) -> *const T {
        let p = SlabRef::as_ptr(&this);
        std::mem::forget(this);
        p
    }

    /// Takes back a handle given up by `into_raw`.
    ///
    /// # Safety
    /// `p` came from `into_raw`, and its count is not taken back twice.
    #[inline]
    pub(crate) unsafe fn from_raw(p: *const T) -> SlabRef<T> {
        SlabRef {
            // SAFETY: `into_raw` returned a pointer to a live slot's first field.
            slot: unsafe { NonNull::new_unchecked(p.cast_mut().cast()) },
        }
    }

    fn slot(&self) -> &Slot<T> {
        // SAFETY: the handle's count keeps the slot alive.
        unsafe { self.slot.as_ref() }
    }
}

impl<T> Deref for SlabRef<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.slot().g
    }
}

impl<T> Clone for SlabRef<T> {
    #[inline]
    fn clone(&self) -> SlabRef<T> {
        // Relaxed: a new handle is made from an existing one, which keeps the record alive
        // (`Arc::clone`'s reasoning).
        let old = self.slot().refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
        SlabRef { slot: self.slot }
    }
}

impl<T> Drop for SlabRef<T> {
    #[inline]
    fn drop(&mut self) {
        // Release/Acquire: every handle's uses happen before the record is dropped.
        if self.slot().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let chunk = self.slot().chunk;
        // SAFETY: the count reached zero: this is the last handle, so nothing else reads the
        // record; it is dropped once, and its chunk count released once.
        unsafe {
            ptr::drop_in_place(ptr::addr_of_mut!((*self.slot.as_ptr()).g));
            chunk_release::<T>(chunk);
        }
    }
}

/// Where a runtime's records are carved; see the module docs.
pub(crate) struct Slab<T> {
    carver: Mutex<Carver>,
    _records: std::marker::PhantomData<T>,
}

struct Carver {
    /// The chunk being carved (the slab holds one count of it), if any.
    chunk: Option<NonNull<ChunkHead>>,
    /// Slots carved from it.
    used: usize,
}

// SAFETY: the chunk pointer is only used under the mutex, and chunks are plain memory.
unsafe impl Send for Carver {}

impl<T> Slab<T> {
    pub(crate) fn new() -> Slab<T> {
        assert!(slots_per_chunk::<T>() >= 1, "a record larger than a chunk");
        Slab {
            carver: Mutex::new(Carver {
                chunk: None,
                used: 0,
            }),
            _records: std::marker::PhantomData,
        }
    }

    /// A handle to `g`, placed in a fresh slot.
    pub(crate) fn make(&self, g: T) -> SlabRef<T> {
        let mut c = self.carver.lock();
        let chunk = match c.chunk {
            Some(chunk) if c.used < slots_per_chunk::<T>() => chunk,
            old => {
                let layout = chunk_layout::<T>();
                // SAFETY: the layout has a non-zero size.
                let p = unsafe { alloc(layout) };
                let Some(p) = NonNull::new(p.cast::<ChunkHead>()) else {
                    handle_alloc_error(layout)
                };
                // SAFETY: a fresh allocation large and aligned enough for the head.
                unsafe {
                    p.as_ptr().write(ChunkHead {
                        live: AtomicUsize::new(1),
                    })
                };
                c.chunk = Some(p);
                c.used = 0;
                if let Some(old) = old {
                    // SAFETY: the slab's own count of its previous chunk.
                    unsafe { chunk_release::<T>(old) };
                }
                p
            }
        };
        let at = first_slot::<T>() + c.used * size_of::<Slot<T>>();
        c.used += 1;
        // SAFETY: the carver's count keeps the chunk alive; this slot lies inside the chunk
        // (`used` < slots_per_chunk), is aligned (the chunk is, and the offset is a multiple
        // of the slot's alignment), and was never handed out.
        unsafe {
            chunk.as_ref().live.fetch_add(1, Ordering::Relaxed);
            let slot = chunk.as_ptr().cast::<u8>().add(at).cast::<Slot<T>>();
            slot.write(Slot {
                g,
                refs: AtomicUsize::new(1),
                chunk,
            });
            SlabRef {
                slot: NonNull::new_unchecked(slot),
            }
        }
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        if let Some(chunk) = self.carver.get_mut().chunk.take() {
            // SAFETY: the slab's own count of its current chunk.
            unsafe { chunk_release::<T>(chunk) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>, [u64; 30]);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn slots_fit_and_are_aligned() {
        assert!(
            slots_per_chunk::<Goroutine>() > 500,
            "{} slots",
            slots_per_chunk::<Goroutine>()
        );
        assert_eq!(
            size_of::<Slot<Goroutine>>() % align_of::<Slot<Goroutine>>(),
            0
        );
        assert!(
            first_slot::<Goroutine>()
                + slots_per_chunk::<Goroutine>() * size_of::<Slot<Goroutine>>()
                <= CHUNK_BYTES
        );
    }

    #[test]
    fn records_drop_once_and_chunks_free_when_empty() {
        let drops = Arc::new(AtomicUsize::new(0));
        let slab = Slab::new();
        let per = slots_per_chunk::<Counted>();
        // Three chunks' worth, so that two chunks are retired while records live.
        let mut refs: Vec<SlabRef<Counted>> = (0..3 * per)
            .map(|i| slab.make(Counted(drops.clone(), [i as u64; 30])))
            .collect();
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(r.1[0], i as u64, "each record keeps its value");
        }
        let first = refs[0].clone();
        assert_eq!(SlabRef::as_ptr(&first), SlabRef::as_ptr(&refs[0]));
        assert_ne!(SlabRef::as_ptr(&first), SlabRef::as_ptr(&refs[1]));
        // A raw round trip keeps the count.
        let raw = SlabRef::into_raw(first);
        assert_eq!(raw, SlabRef::as_ptr(&refs[0]));
        // SAFETY: `raw` came from `into_raw` just above.
        let back = unsafe { SlabRef::from_raw(raw) };
        refs.truncate(per); // drops two chunks' records; their chunks are freed
        assert_eq!(drops.load(Ordering::Relaxed), 2 * per);
        drop(refs);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            3 * per - 1,
            "`back` keeps one alive"
        );
        assert_eq!(back.1[0], 0);
        drop(back);
        assert_eq!(drops.load(Ordering::Relaxed), 3 * per);
        // Records made after a chunk filled and emptied still work.
        let again = slab.make(Counted(drops.clone(), [7; 30]));
        assert_eq!(again.1[29], 7);
        drop(slab); // the record outlives the slab, as a record outlives its runtime
        assert_eq!(again.1[0], 7);
        drop(again);
        assert_eq!(drops.load(Ordering::Relaxed), 3 * per + 1);
    }

    #[test]
    fn handles_move_between_threads() {
        let drops = Arc::new(AtomicUsize::new(0));
        let slab = Arc::new(Slab::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (slab, drops) = (slab.clone(), drops.clone());
                std::thread::spawn(move || {
                    let v: Vec<_> = (0..2000)
                        .map(|i| slab.make(Counted(drops.clone(), [t * 10_000 + i; 30])))
                        .collect();
                    let copies: Vec<_> = v.to_vec();
                    (v, copies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            let (v, copies) = t.join().unwrap();
            all.extend(v);
            std::thread::spawn(move || drop(copies)).join().unwrap();
        }
        let mut seen: Vec<u64> = all.iter().map(|r| r.1[5]).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8000, "no slot handed out twice");
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(all);
        assert_eq!(drops.load(Ordering::Relaxed), 8000);
    }
}
