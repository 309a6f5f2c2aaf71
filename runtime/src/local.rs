//! Goroutine-local storage: the safe alternative to thread-locals for goroutine code.
//!
//! A goroutine may resume on another OS thread after any blocking call, so a `thread_local!`
//! value read before the call and after it may be two different values (see
//! `docs/caveats.md`). A [`LocalKey`] belongs to the goroutine instead: it follows the
//! goroutine across threads and is dropped when the goroutine ends.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sched;

static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);

/// A key for a goroutine-local value; declare one with [`goroutine_local!`](crate::goroutine_local).
///
/// ```
/// use std::cell::RefCell;
/// gort::goroutine_local! {
///     static TRACE: RefCell<Vec<&'static str>> = RefCell::new(Vec::new());
/// }
/// gort::run(|| {
///     TRACE.with(|t| t.borrow_mut().push("main"));
///     let child = gort::spawn(|| TRACE.with(|t| t.borrow().len())).join();
///     assert_eq!(child, 0); // a new goroutine starts from the initial value
///     TRACE.with(|t| assert_eq!(*t.borrow(), ["main"]));
/// });
/// ```
pub struct LocalKey<T: Send + 'static> {
    init: fn() -> T,
    id: AtomicUsize,
}

impl<T: Send + 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey {
            init,
            id: AtomicUsize::new(0),
        }
    }

    fn key(&self) -> usize {
        let id = self.id.load(Ordering::Acquire);
        if id != 0 {
            return id;
        }
        let new = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => new,
            Err(won) => won,
        }
    }

    /// Runs `f` with the running goroutine's value, initialising it on first use.
    ///
    /// # Panics
    /// Outside a goroutine.
    ///
    /// ```
    /// use std::cell::Cell;
    /// gort::goroutine_local! {
    ///     static CALLS: Cell<u32> = Cell::new(0);
    /// }
    /// gort::run(|| {
    ///     CALLS.with(|c| c.set(c.get() + 1));
    ///     gort::yield_now(); // may resume on another thread: the value follows the goroutine
    ///     CALLS.with(|c| assert_eq!(c.get(), 1));
    ///     let other = gort::spawn(|| CALLS.with(|c| c.get())).join();
    ///     assert_eq!(other, 0, "each goroutine has its own value");
    /// });
    /// ```
    #[track_caller]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let gp = sched::expect_g("LocalKey::with");
        let key = self.key();
        let ptr: *const T = {
            // SAFETY: the running goroutine owns its record's `inner`; the borrow ends at the
            // end of this block, before `f` (which may park) runs.
            let locals = unsafe { &mut (*gp).inner().locals };
            let found = locals.iter().find(|(k, _)| *k == key).map(|(_, v)| {
                let v: &(dyn Any + Send) = &**v;
                v as *const (dyn Any + Send)
            });
            let v = match found {
                Some(v) => v,
                None => {
                    let b: Box<dyn Any + Send> = Box::new((self.init)());
                    let p = &*b as *const (dyn Any + Send);
                    locals.push((key, b));
                    p
                }
            };
            // SAFETY: the value behind `v` is boxed and lives until the goroutine ends.
            unsafe { &*v }
                .downcast_ref::<T>()
                .expect("a goroutine-local key always stores its own type")
        };
        // SAFETY: the value is boxed (its address survives pushes to `locals`) and dropped only
        // when this goroutine ends, which cannot happen while `f` runs on it.
        f(unsafe { &*ptr })
    }
}

/// Declares goroutine-local values, like `thread_local!` but per goroutine.
///
/// ```
/// use std::cell::RefCell;
/// gort::goroutine_local! {
///     /// Per-goroutine scratch buffer.
///     static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::new());
/// }
/// gort::run(|| SCRATCH.with(|s| s.borrow_mut().push(1)));
/// ```
#[macro_export]
macro_rules! goroutine_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr;)+) => {
        $(
            $(#[$attr])*
            $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
                fn __gort_init() -> $t {
                    $init
                }
                __gort_init
            });
        )+
    };
}
