//! Go's `context`: cancellation, deadlines and request-scoped values, passed down a tree of
//! goroutines.
//!
//! A [`Context`] is a cheap handle (`Clone`). Its [`done`](Context::done) channel is closed
//! when the context is cancelled: by its cancel function, by its deadline, or because its
//! parent was cancelled. `done()` is an ordinary [`Chan`], so a goroutine waits for
//! cancellation in `select!` beside its other work, as in Go.
//!
//! # Invariants
//!
//! - A cancellable context registers with its nearest cancellable ancestor (`children`, under
//!   the ancestor's lock) unless that ancestor is already cancelled, in which case it is
//!   cancelled at once with the ancestor's error. Cancelling takes the context's own lock,
//!   records the error once, closes `done` once, then cancels the children it took from its
//!   list; a child cancelled by itself removes itself from its parent's list (Go's
//!   `removeChild`), so long-lived parents do not collect dead children.
//! - Locks are taken parent before child only (registration holds the parent's lock alone;
//!   cancel releases its own lock before it cancels the children), so the tree cannot
//!   deadlock.
//! - A deadline is an `after_func` timer on the context; cancelling stops it, so a cancelled
//!   context leaves no timer behind and no goroutine waits for it.
//!
//! # Example: a generator that stops when its consumer is done
//!
//! ```
//! use gort::context::{self, Context};
//! use gort::Chan;
//!
//! fn generate(ctx: Context) -> Chan<u64> {
//!     let out = Chan::new(0);
//!     let o = out.clone();
//!     gort::go!(move || {
//!         let mut n = 0;
//!         loop {
//!             gort::select! {
//!                 recv(ctx.done()) -> _ => break,
//!                 send(o, n) => n += 1,
//!             }
//!         }
//!         o.close();
//!     });
//!     out
//! }
//!
//! gort::run(|| {
//!     let (ctx, cancel) = context::with_cancel(&context::background());
//!     let nums = generate(ctx.clone());
//!     for n in &nums {
//!         if n == 5 {
//!             break;
//!         }
//!     }
//!     cancel.cancel(); // the generator returns and closes its channel
//!     assert_eq!(ctx.err(), Some(context::Error::Canceled));
//! });
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::chan::Chan;
use crate::time::Timer;

/// Why a context is done (Go's `context.Canceled` and `context.DeadlineExceeded`).
///
/// ```
/// use gort::context::{self, Error};
/// let (ctx, cancel) = context::with_cancel(&context::background());
/// cancel.cancel();
/// assert_eq!(ctx.err(), Some(Error::Canceled)); // Go: ctx.Err() == context.Canceled
/// assert_eq!(Error::Canceled.to_string(), "context canceled");
/// assert_eq!(Error::DeadlineExceeded.to_string(), "context deadline exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// Its cancel function was called (or its parent's).
    Canceled,
    /// Its deadline passed (or its parent's).
    DeadlineExceeded,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Canceled => "context canceled",
            Error::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for Error {}

/// A node of the context tree; see [`background`], [`with_cancel`], [`with_deadline`],
/// [`with_timeout`] and [`with_value`].
///
/// Cancelling a context cancels everything derived from it, never its parent:
///
/// ```
/// use gort::context;
/// let (parent, cancel_parent) = context::with_cancel(&context::background());
/// let (child, cancel_child) = context::with_cancel(&parent);
/// cancel_child.cancel();
/// assert!(child.err().is_some() && parent.err().is_none());
/// let (other, _cancel) = context::with_cancel(&parent);
/// cancel_parent.cancel();
/// assert_eq!(other.err(), Some(context::Error::Canceled));
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

struct Node {
    parent: Option<Context>,
    kind: Kind,
}

enum Kind {
    /// `background()`: never done, no deadline, no values.
    Background,
    /// `with_value`: a key (its type and value's identity) and a value.
    Value {
        key: Box<dyn Any + Send + Sync>,
        key_type: TypeId,
        eq: fn(&(dyn Any + Send + Sync), &(dyn Any + Send + Sync)) -> bool,
        value: Arc<dyn Any + Send + Sync>,
    },
    /// `with_cancel`, `with_deadline`, `with_timeout`.
    Cancel(CancelState),
}

struct CancelState {
    done: Chan<()>,
    deadline: Option<Instant>,
    inner: Mutex<CancelInner>,
}

struct CancelInner {
    err: Option<Error>,
    /// Registered cancellable descendants (the nearest ones), by identity.
    children: Vec<Weak<Node>>,
    timer: Option<Timer>,
    /// Functions to start, each in its own goroutine, when this context is done
    /// ([`Context::after_func`]).
    after: Vec<AfterEntry>,
    /// This node itself while `after` is not empty: a registered function must run when the
    /// context is done even if every handle to it was dropped (parents hold children weakly;
    /// Go's parent holds them strongly). Cleared when the node is cancelled or its last
    /// function stopped, so the cycle lasts exactly as long as the registration.
    pinned: Option<Arc<Node>>,
}

/// A function registered by [`Context::after_func`], with the runtime to start it in.
struct AfterEntry {
    id: u64,
    f: Box<dyn FnOnce() + Send>,
    rt: Arc<crate::sched::Shared>,
    /// Where `after_func` was called (the goroutine's `created by` line).
    at: &'static std::panic::Location<'static>,
}

/// Starts a registered function in its own goroutine on its runtime.
fn start_after(
    rt: &Arc<crate::sched::Shared>,
    f: Box<dyn FnOnce() + Send>,
    at: &'static std::panic::Location<'static>,
) {
    /// The function behind the box has no name of its own to give.
    fn entry() -> &'static str {
        "the function given to gort::context::Context::after_func"
    }
    crate::sched::spawn_external(rt, f, None, None, Some((at, 0)), entry);
}

/// Cancels its context (Go's `CancelFunc`); calling it again does nothing. Dropping it does
/// not cancel (as in Go, where not calling it leaks until the parent is done): call
/// [`CancelFunc::cancel`], typically through `defer!`.
///
/// ```
/// use gort::context;
/// #[gort::func]
/// fn job(parent: &context::Context) -> context::Context {
///     let (ctx, cancel) = context::with_cancel(parent);
///     defer!(cancel.cancel()); // Go: defer cancel()
///     // ... hand ctx to the goroutines doing the job ...
///     ctx
/// }
/// // The job's context is cancelled once the function returned.
/// assert_eq!(job(&context::background()).err(), Some(context::Error::Canceled));
/// ```
#[derive(Clone)]
pub struct CancelFunc {
    node: Arc<Node>,
}

impl CancelFunc {
    /// Cancels the context and everything derived from it, with [`Error::Canceled`].
    ///
    /// ```
    /// use gort::context;
    /// let (ctx, cancel) = context::with_cancel(&context::background());
    /// cancel.cancel();
    /// cancel.cancel(); // a second call does nothing
    /// assert_eq!(ctx.done().recv(), None); // done is closed
    /// ```
    pub fn cancel(&self) {
        cancel(&self.node, Error::Canceled, true);
    }
}

/// Identities of [`Context::after_func`] registrations.
static NEXT_AFTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A function registered with [`Context::after_func`]; dropping it leaves the function
/// registered (Go's `stop` function, which one may ignore).
///
/// ```
/// use gort::context;
/// gort::run(|| {
///     let (ctx, cancel) = context::with_cancel(&context::background());
///     let stop = ctx.after_func(|| unreachable!("stopped before the cancel"));
///     assert!(stop.stop()); // kept it from running
///     assert!(!stop.stop()); // already stopped
///     cancel.cancel();
/// });
/// ```
#[derive(Debug)]
pub struct AfterFunc {
    state: AfterState,
}

#[derive(Debug)]
enum AfterState {
    /// On a context that is never done: `f` was dropped; the first `stop` reports that it
    /// was kept from running (Go's `stop` does the same).
    Never(std::sync::atomic::AtomicBool),
    /// The context was already done: started at once.
    Started,
    /// Registered on this node under this identity.
    Registered(Weak<Node>, u64),
}

impl AfterFunc {
    /// Unregisters the function. True if that kept it from running; false if it has
    /// already been started (the context is done) or stopped before.
    ///
    /// ```
    /// use gort::context;
    /// gort::run(|| {
    ///     let (ctx, cancel) = context::with_cancel(&context::background());
    ///     let ran = gort::Chan::new(1);
    ///     let r = ran.clone();
    ///     let stop = ctx.after_func(move || r.send(()));
    ///     cancel.cancel();
    ///     assert_eq!(ran.recv(), Some(())); // started in its own goroutine
    ///     assert!(!stop.stop());
    /// });
    /// ```
    pub fn stop(&self) -> bool {
        let (node, id) = match &self.state {
            AfterState::Never(stopped) => {
                return !stopped.swap(true, std::sync::atomic::Ordering::Relaxed)
            }
            AfterState::Started => return false,
            AfterState::Registered(node, id) => (node, *id),
        };
        let Some(node) = node.upgrade() else {
            return false;
        };
        let Some(st) = node.cancel_state() else {
            return false;
        };
        let mut inner = st.inner.lock();
        let Some(i) = inner.after.iter().position(|a| a.id == id) else {
            return false;
        };
        let entry = inner.after.swap_remove(i);
        let pinned = if inner.after.is_empty() {
            inner.pinned.take()
        } else {
            None
        };
        drop(inner);
        // Dropped outside the lock: the closure's captures may be anything.
        drop(entry);
        drop(pinned);
        true
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}

/// The root of every context tree (Go's `context.Background()`): never cancelled, no
/// deadline, no values.
///
/// ```
/// let ctx = gort::context::background();
/// assert_eq!(ctx.err(), None);
/// assert!(ctx.deadline().is_none());
/// ```
pub fn background() -> Context {
    Context {
        node: Arc::new(Node {
            parent: None,
            kind: Kind::Background,
        }),
    }
}

/// A context's error as an I/O error (`TimedOut` for a deadline, `Interrupted` for a
/// cancel; the text is Go's), for operations bounded by a context (`connect_context`, a
/// request's context).
pub(crate) fn io_error(e: Error) -> std::io::Error {
    let kind = match e {
        Error::DeadlineExceeded => std::io::ErrorKind::TimedOut,
        Error::Canceled => std::io::ErrorKind::Interrupted,
    };
    std::io::Error::new(kind, e)
}

/// Runs `f` once `ctx` is done, unless the returned watch is stopped (or dropped) first: a
/// goroutine waits on `ctx.done()` (a thread outside a runtime). Operations that a context
/// must interrupt (a connect, a request) hold the watch for their duration.
pub(crate) fn watch(ctx: &Context, f: impl FnOnce() + Send + 'static) -> Watch {
    let stop: Chan<()> = Chan::new(0);
    let (done, st) = (ctx.done(), stop.clone());
    let w = move || {
        crate::select! {
            recv(done) -> _ => f(),
            recv(st) -> _ => {},
        }
    };
    if crate::sched::current_shared().is_some() {
        crate::go!(w);
    } else {
        std::thread::spawn(w);
    }
    Watch(stop)
}

/// A running [`watch`]; stops it when dropped.
pub(crate) struct Watch(Chan<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A child of `parent` with a cancel function (Go's `context.WithCancel`).
///
/// ```
/// use gort::context;
/// let (ctx, cancel) = context::with_cancel(&context::background());
/// assert!(ctx.done().try_recv().is_err()); // not done yet
/// cancel.cancel();
/// assert_eq!(ctx.done().recv(), None); // closed
/// assert_eq!(ctx.err(), Some(context::Error::Canceled));
/// ```
pub fn with_cancel(parent: &Context) -> (Context, CancelFunc) {
    new_cancel(parent, None)
}

/// A child of `parent` that is cancelled at `deadline` at the latest (Go's
/// `context.WithDeadline`); the earlier of its own and its parent's deadline counts.
///
/// # Panics
/// Outside a runtime, when a timer is needed (the deadline is in the future and earlier than
/// the parent's).
///
/// ```
/// use std::time::{Duration, Instant};
/// use gort::context;
/// gort::run(|| {
///     let at = Instant::now() + Duration::from_millis(10);
///     let (ctx, _cancel) = context::with_deadline(&context::background(), at);
///     assert_eq!(ctx.deadline(), Some(at));
///     ctx.done().recv();
///     assert_eq!(ctx.err(), Some(context::Error::DeadlineExceeded));
/// });
/// ```
#[track_caller]
pub fn with_deadline(parent: &Context, deadline: Instant) -> (Context, CancelFunc) {
    if parent.deadline().is_some_and(|d| d <= deadline) {
        // The parent's deadline comes first: it alone decides (Go does the same).
        return new_cancel(parent, None);
    }
    let (ctx, cancel) = new_cancel(parent, Some(deadline));
    let wait = deadline.saturating_duration_since(Instant::now());
    if wait.is_zero() {
        self::cancel(&ctx.node, Error::DeadlineExceeded, true);
        return (ctx, cancel);
    }
    let st = ctx
        .node
        .cancel_state()
        .expect("new_cancel makes a cancellable node");
    let mut inner = st.inner.lock();
    if inner.err.is_none() {
        let weak = Arc::downgrade(&ctx.node);
        inner.timer = Some(crate::time::after_func(wait, move || {
            if let Some(node) = weak.upgrade() {
                self::cancel(&node, Error::DeadlineExceeded, true);
            }
        }));
    }
    drop(inner);
    (ctx, cancel)
}

/// [`with_deadline`] at `timeout` from now (Go's `context.WithTimeout`).
///
/// # Panics
/// Outside a runtime (see [`with_deadline`]).
///
/// ```
/// use std::time::Duration;
/// use gort::context;
/// gort::run(|| {
///     let (ctx, cancel) = context::with_timeout(&context::background(), Duration::from_secs(60));
///     assert!(ctx.deadline().is_some());
///     cancel.cancel(); // Go's `defer cancel()`: releases its timer at once
/// });
/// ```
#[track_caller]
pub fn with_timeout(parent: &Context, timeout: Duration) -> (Context, CancelFunc) {
    with_deadline(parent, Instant::now() + timeout)
}

/// A child of `parent` that carries `value` under `key` (Go's `context.WithValue`). Keys are
/// compared by type and value, so a private key type (Go's advice: an unexported type)
/// cannot collide with another package's.
///
/// ```
/// use gort::context;
/// #[derive(PartialEq)]
/// struct RequestId;
/// let ctx = context::with_value(&context::background(), RequestId, String::from("r-42"));
/// assert_eq!(ctx.value::<_, String>(&RequestId).as_deref().map(String::as_str), Some("r-42"));
/// ```
pub fn with_value<K, V>(parent: &Context, key: K, value: V) -> Context
where
    K: PartialEq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn eq<K: PartialEq + 'static>(
        a: &(dyn Any + Send + Sync),
        b: &(dyn Any + Send + Sync),
    ) -> bool {
        matches!((a.downcast_ref::<K>(), b.downcast_ref::<K>()), (Some(a), Some(b)) if a == b)
    }
    Context {
        node: Arc::new(Node {
            parent: Some(parent.clone()),
            kind: Kind::Value {
                key: Box::new(key),
                key_type: TypeId::of::<K>(),
                eq: eq::<K>,
                value: Arc::new(value),
            },
        }),
    }
}

impl Context {
    /// A channel that is closed when the context is done (Go's `ctx.Done()`); for
    /// [`background`] and contexts below it with no cancel, a nil channel that never is.
    ///
    /// ```
    /// use gort::context;
    /// gort::run(|| {
    ///     assert!(context::background().done().is_nil()); // never done
    ///     let (ctx, cancel) = context::with_cancel(&context::background());
    ///     let done = ctx.done();
    ///     gort::go!(move || cancel.cancel());
    ///     gort::select! { // Go: select { case <-ctx.Done(): ... }
    ///         recv(done) -> v => assert_eq!(v, None),
    ///     }
    ///     assert!(ctx.err().is_some());
    /// });
    /// ```
    pub fn done(&self) -> Chan<()> {
        match self.cancellable() {
            Some(st) => st.done.clone(),
            None => Chan::nil(),
        }
    }

    /// Why the context is done, or `None` while it is not (Go's `ctx.Err()`).
    ///
    /// ```
    /// use gort::context;
    /// let (ctx, cancel) = context::with_cancel(&context::background());
    /// assert_eq!(ctx.err(), None); // Go: ctx.Err() == nil
    /// cancel.cancel();
    /// assert_eq!(ctx.err(), Some(context::Error::Canceled));
    /// ```
    pub fn err(&self) -> Option<Error> {
        self.cancellable().and_then(|st| st.inner.lock().err)
    }

    /// When the context will be cancelled at the latest, if ever (Go's `ctx.Deadline()`).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use gort::context;
    /// gort::run(|| {
    ///     assert_eq!(context::background().deadline(), None);
    ///     let at = Instant::now() + Duration::from_secs(60);
    ///     let (ctx, cancel) = context::with_deadline(&context::background(), at);
    ///     let (child, _) = context::with_cancel(&ctx); // inherits the deadline
    ///     assert_eq!(child.deadline(), Some(at));
    ///     cancel.cancel();
    /// });
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        let mut n = Some(self);
        while let Some(c) = n {
            if let Kind::Cancel(st) = &c.node.kind {
                if st.deadline.is_some() {
                    return st.deadline;
                }
            }
            n = c.node.parent.as_ref();
        }
        None
    }

    /// The value stored under `key` by this context or the nearest ancestor that has one (Go's
    /// `ctx.Value(key)`), if it is a `V`.
    ///
    /// ```
    /// use gort::context;
    /// #[derive(PartialEq)]
    /// struct User;
    /// let ctx = context::with_value(&context::background(), User, 7u32);
    /// let (child, _cancel) = context::with_cancel(&ctx);
    /// assert_eq!(child.value::<_, u32>(&User).as_deref(), Some(&7)); // found in an ancestor
    /// assert!(child.value::<_, String>(&User).is_none()); // not a String
    /// assert!(context::background().value::<_, u32>(&User).is_none());
    /// ```
    pub fn value<K, V>(&self, key: &K) -> Option<Arc<V>>
    where
        K: PartialEq + Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let mut n = Some(self);
        while let Some(c) = n {
            if let Kind::Value {
                key: k,
                key_type,
                eq,
                value,
            } = &c.node.kind
            {
                if *key_type == TypeId::of::<K>() && eq(&**k, key) {
                    return value.clone().downcast::<V>().ok();
                }
            }
            n = c.node.parent.as_ref();
        }
        None
    }

    /// Arranges for `f` to run in a goroutine of its own once this context is done (Go 1.21's
    /// `context.AfterFunc`); at once if it already is. [`AfterFunc::stop`] unregisters it.
    ///
    /// This is the seam between contexts and blocking work that does not watch
    /// [`done`](Context::done) itself, network I/O above all: set a deadline in the past on
    /// the connection, and the goroutine blocked in `read` or `write` wakes with
    /// [`std::io::ErrorKind::TimedOut`] (the same idiom as Go's before `net` took contexts).
    /// `gort::net` has no context-taking calls (`DialContext`, ...) yet.
    ///
    /// A context that can never be done (`background()` and values over it) never runs `f`.
    ///
    /// Differs from Go: a registered function keeps its context (and the runtime it will start
    /// in) alive until the context is done or the function is stopped. Go's collector frees a
    /// whole unreachable tree with its registrations; gort has no collector, so a registration
    /// on a context that is never cancelled stays. Call [`AfterFunc::stop`] or cancel the
    /// context (Go's `defer cancel()` does).
    ///
    /// # Panics
    /// Outside a runtime (the goroutine is started in the runtime of the caller).
    ///
    /// # Example: cancelling a blocked read
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Instant;
    /// use gort::context;
    /// use gort::net::{TcpListener, TcpStream};
    ///
    /// gort::run(|| {
    ///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let _peer = TcpStream::connect(ln.local_addr().unwrap()).unwrap(); // never writes
    ///     let (mut conn, _) = ln.accept().unwrap();
    ///
    ///     let (ctx, cancel) = context::with_cancel(&context::background());
    ///     let c = conn.try_clone().unwrap();
    ///     let stop = ctx.after_func(move || {
    ///         let _ = c.set_deadline(Some(Instant::now())); // wakes the blocked read
    ///     });
    ///     gort::go!(move || cancel.cancel());
    ///     let err = conn.read(&mut [0u8; 16]).unwrap_err();
    ///     assert_eq!(err.kind(), ErrorKind::TimedOut);
    ///     assert!(!stop.stop()); // it already ran
    /// });
    /// ```
    #[track_caller]
    pub fn after_func<F>(&self, f: F) -> AfterFunc
    where
        F: FnOnce() + Send + 'static,
    {
        let at = std::panic::Location::caller();
        let Some(rt) = crate::sched::current_shared() else {
            panic!("gort: Context::after_func called outside a gort runtime")
        };
        let Some(node) = self.cancellable_node() else {
            // Never done: `f` never runs.
            return AfterFunc {
                state: AfterState::Never(std::sync::atomic::AtomicBool::new(false)),
            };
        };
        let Some(st) = node.cancel_state() else {
            crate::panic::throw("context: the nearest cancellable node has no cancel state")
        };
        let id = NEXT_AFTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut inner = st.inner.lock();
        if inner.err.is_some() {
            drop(inner);
            start_after(&rt, Box::new(f), at);
            return AfterFunc {
                state: AfterState::Started,
            };
        }
        inner.after.push(AfterEntry {
            id,
            f: Box::new(f),
            rt,
            at,
        });
        if inner.pinned.is_none() {
            inner.pinned = Some(node.clone());
        }
        AfterFunc {
            state: AfterState::Registered(Arc::downgrade(node), id),
        }
    }

    /// The nearest cancellable context's state, at or above this one.
    fn cancellable(&self) -> Option<&CancelState> {
        self.cancellable_node().and_then(|n| n.cancel_state())
    }

    /// The nearest cancellable node at or above this one.
    fn cancellable_node(&self) -> Option<&Arc<Node>> {
        let mut n = Some(self);
        while let Some(c) = n {
            if c.node.cancel_state().is_some() {
                return Some(&c.node);
            }
            n = c.node.parent.as_ref();
        }
        None
    }
}

impl Node {
    /// The cancellation state, if this node is cancellable.
    fn cancel_state(&self) -> Option<&CancelState> {
        match &self.kind {
            Kind::Cancel(st) => Some(st),
            _ => None,
        }
    }
}

fn new_cancel(parent: &Context, deadline: Option<Instant>) -> (Context, CancelFunc) {
    let node = Arc::new(Node {
        parent: Some(parent.clone()),
        kind: Kind::Cancel(CancelState {
            done: Chan::new(0),
            deadline,
            inner: Mutex::new(CancelInner {
                err: None,
                children: Vec::new(),
                timer: None,
                after: Vec::new(),
                pinned: None,
            }),
        }),
    });
    // Register with the nearest cancellable ancestor, or inherit its end at once.
    if let Some(ast) = parent.cancellable() {
        let mut a = ast.inner.lock();
        match a.err {
            Some(e) => {
                drop(a);
                cancel(&node, e, false);
            }
            None => {
                a.children.retain(|w| w.strong_count() > 0);
                a.children.push(Arc::downgrade(&node));
            }
        }
    }
    (Context { node: node.clone() }, CancelFunc { node })
}

/// Cancels `node` (a cancellable node) and its registered descendants with `err`; with
/// `detach`, also leaves its parent's list.
fn cancel(node: &Arc<Node>, err: Error, detach: bool) {
    let Some(st) = node.cancel_state() else {
        return;
    };
    let (children, timer, after, pinned) = {
        let mut inner = st.inner.lock();
        if inner.err.is_some() {
            return;
        }
        inner.err = Some(err);
        st.done.close();
        (
            std::mem::take(&mut inner.children),
            inner.timer.take(),
            std::mem::take(&mut inner.after),
            inner.pinned.take(),
        )
    };
    if let Some(t) = timer {
        t.stop();
    }
    for a in after {
        start_after(&a.rt, a.f, a.at);
    }
    drop(pinned);
    for c in children.iter().filter_map(Weak::upgrade) {
        cancel(&c, err, false);
    }
    if detach {
        if let Some(ast) = node.parent.as_ref().and_then(Context::cancellable) {
            ast.inner
                .lock()
                .children
                .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(node)));
        }
    }
}
