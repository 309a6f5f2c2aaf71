//! `JoinHandle`: the Rust-style way to get a goroutine's result.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::sched::park::{block_current, Waiter};
use crate::sched::{ExitNotify, WaitReason};

/// Owned permission to wait for a goroutine started with [`spawn`](crate::spawn) and take its
/// result.
///
/// Go has no join: its programs wait with channels or a `WaitGroup`. This handle is the
/// Rust-style alternative. `join` parks a goroutine (or blocks a plain thread) until the
/// goroutine returns. Dropping the handle detaches the goroutine, which keeps running.
///
/// # Example
///
/// ```
/// gort::run(|| {
///     let h = gort::spawn(|| 6 * 7);
///     assert_eq!(h.join(), 42);
/// });
/// ```
pub struct JoinHandle<T> {
    inner: Arc<Slot<T>>,
    id: u64,
}

pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Option<T>,
    abandoned: bool,
    waiter: Option<Waiter>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new(State {
                value: None,
                abandoned: false,
                waiter: None,
            }),
        })
    }

    /// Stores the goroutine's result and wakes the joiner.
    pub(crate) fn complete(&self, v: T) {
        let mut st = self.state.lock();
        st.value = Some(v);
        let w = st.waiter.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T: Send> ExitNotify for Slot<T> {
    fn abandoned(&self) {
        let mut st = self.state.lock();
        st.abandoned = true;
        let w = st.waiter.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(inner: Arc<Slot<T>>, id: u64) -> JoinHandle<T> {
        JoinHandle { inner, id }
    }

    /// The goroutine's id (as [`goid`](crate::goid) returns inside it).
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::spawn(gort::goid);
    ///     let id = h.id();
    ///     assert_eq!(h.join(), id);
    /// });
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the goroutine has returned its value.
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::spawn(|| 1);
    ///     while !h.is_finished() {
    ///         gort::yield_now();
    ///     }
    ///     assert_eq!(h.join(), 1);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.state.lock().value.is_some()
    }

    /// Waits for the goroutine to return and takes its value.
    ///
    /// # Panics
    /// If the goroutine ended without a value: it panicked (which also crashes the program
    /// or, under `gort::run`, re-raises there), or its runtime shut down first.
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::spawn(|| String::from("done"));
    ///     assert_eq!(h.join(), "done");
    /// });
    /// ```
    #[track_caller]
    pub fn join(self) -> T {
        loop {
            let mut st = self.inner.state.lock();
            if let Some(v) = st.value.take() {
                return v;
            }
            if st.abandoned {
                panic!(
                    "gort: goroutine {} ended without a result (it panicked, called gort::goexit, or \
                     its runtime shut down)",
                    self.id
                );
            }
            block_current(WaitReason::Join, move |w| {
                st.waiter = Some(w);
                drop(st);
            });
        }
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}
