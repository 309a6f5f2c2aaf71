//! # gort — goroutines for Rust
//!
//! An M:N runtime in Go's GMP design: stackful goroutines on fixed-address stacks, a
//! work-stealing scheduler with Go's `runnext`, global-queue fairness and spinning-M protocol,
//! and Go's blocking-style programming model.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! fn add(total: Arc<AtomicU64>, n: u64, wg: gort::WaitGroup) {
//!     total.fetch_add(n, Ordering::Relaxed);
//!     wg.done();
//! }
//!
//! let total = gort::run(|| {
//!     let total = Arc::new(AtomicU64::new(0));
//!     let wg = gort::WaitGroup::new();
//!     for n in 1..=100 {
//!         wg.add(1);
//!         gort::go!(add(total.clone(), n, wg.clone())); // arguments evaluated here, as in Go
//!     }
//!     wg.wait();
//!     total.load(Ordering::Relaxed)
//! });
//! assert_eq!(total, 5050);
//! ```
//!
//! ## Goroutines migrate between threads
//!
//! A goroutine may resume on a different OS thread after anything that can block or yield
//! (`yield_now`, `WaitGroup::wait`, `JoinHandle::join`, and channel and lock operations). Do
//! not hold thread-bound state across such a call: a `thread_local!` borrow, an `Rc` shared
//! with another goroutine, a `std::sync::MutexGuard` (unlocking on another thread is undefined
//! for pthread mutexes), or FFI state tied to the thread. Use [`goroutine_local!`] for
//! per-goroutine state. `docs/caveats.md` explains why Rust's type system cannot check this.

#![warn(missing_docs)]

extern crate self as gort;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "gort runs on Linux only (it uses epoll, membarrier, MADV_GUARD_INSTALL and /proc); \
     x86-64 and aarch64"
);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("gort supports x86-64 and aarch64 only (its stack switch and stack probes)");

mod block_on;
pub mod chan;
pub mod context;
mod coro;
pub mod debug;
pub mod errgroup;
#[cfg(feature = "http")]
pub mod http;
mod join;
mod local;
mod loom;
pub mod net;
mod netpoll;
mod panic;
mod sched;
pub mod semaphore;
pub mod signal;
mod sync;
pub mod time;

use std::sync::Arc;

pub use block_on::block_on;
pub use chan::{
    Chan, RecvTimeoutError, Select, Selected, SendTimeoutError, TryRecvError, TrySendError,
};
pub use join::JoinHandle;
pub use local::LocalKey;
pub use panic::{goexit, recover, Named, Panic, PanicLocation, RuntimeError};
pub use sync::{
    Cond, Mutex, MutexGuard, Once, OnceCell, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitGroup,
};

// docs/from-go.md: every Rust block on that page runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../docs/from-go.md")]
pub struct FromGoGuide;

/// What most gort programs use, in one import: `use gort::prelude::*;`.
///
/// ```
/// use gort::prelude::*;
///
/// gort::run(|| {
///     let ch: Chan<u32> = Chan::new(1);
///     let wg = WaitGroup::new();
///     let tx = ch.clone();
///     wg.go(move || tx.send(7));
///     wg.wait();
///     assert_eq!(ch.recv(), Some(7));
///     let (ctx, cancel) = context::with_cancel(&context::background());
///     cancel.cancel();
///     assert_eq!(ctx.err(), Some(context::Error::Canceled));
/// });
/// ```
pub mod prelude {
    pub use crate::context::{self, Context};
    pub use crate::errgroup::Group;
    pub use crate::{
        defer, go, goexit, recover, select, Chan, Cond, Mutex, Once, RwLock, Select, TryRecvError,
        TrySendError, WaitGroup,
    };
}

/// Makes a function a Go-style function: a frame whose `defer!` calls run when it returns,
/// panics, or its goroutine calls [`goexit`].
///
/// Inside the function, `defer!` registers a deferred call in this frame; the calls run newest
/// first after the body, also when it panics (then one of them may [`recover`]). Forms:
///
/// - `defer!(f(a, b))`, `defer!(obj.method(a))`: the function value, receiver and arguments
///   are evaluated at the `defer!`, as in Go (`defer!(print_i(i * 10))` sees today's `i`);
/// - `defer!(println!("x = {}", x))` (also `print!`, `eprintln!`, `eprint!`): the text is
///   formatted at the `defer!` and printed at the end, like Go's `defer fmt.Println(x)`;
/// - `defer!(move || { ... })`: a closure, which reads what it captures when it runs;
/// - `defer!(|r| ...)`: a closure that gets the frame's result as `&mut` [`Named`], to read
///   or replace it (Go's named results; the recover-into-an-error idiom).
///
/// Deferred calls may borrow the function's parameters but not the body's locals: the body
/// has ended when they run. Use a `move` closure (or `Rc<Cell<_>>` for values the body keeps
/// changing).
///
/// **Go's `defer close(out)`** is `defer!(out.clone().close())`. Go copies the receiver at the
/// `defer`; in Rust, evaluating `out` moves it, so `defer!(out.close())` followed by
/// `out.send(v)` fails with E0382, whose help is exactly this spelling. A [`Chan`] (like a
/// [`WaitGroup`] or a [`context::Context`]) is a handle: its clone is a reference-count
/// increment and shares the channel, so the deferred call closes the same channel. The same
/// holds for every handle type: `defer!(wg.clone().done())`.
///
/// ```
/// #[gort::func]
/// fn produce(out: gort::Chan<u32>) {
///     defer!(out.clone().close()); // Go: defer close(out)
///     for i in 0..3 {
///         out.send(i);
///     }
/// }
///
/// gort::run(|| {
///     let ch = gort::Chan::new(3);
///     produce(ch.clone());
///     assert_eq!((&ch).into_iter().sum::<u32>(), 3);
/// });
/// ```
///
/// A `#[gort::func]` function is also where a goroutine's stack grows: on entry it compares
/// the stack pointer with the goroutine's stack guard (Go's prologue check, about half a
/// nanosecond), and when less than 64 KiB is left the whole frame, deferred calls included,
/// runs on a further stack segment (see [`maybe_grow`]). So recursion through `#[gort::func]`
/// functions reaches as deep as Go's, far past the goroutine's 256 KiB window. Two kinds of
/// function are left unchecked: a `#[track_caller]` one (running its body in a closure would
/// hide the caller's location) and a diverging one (`-> !`).
///
/// Up to 8 `defer!`s that are not inside loops are open-coded (kept in typed slots in the
/// function's own stack frame, as Go 1.14+ does); otherwise every `defer!` of the function goes
/// on the goroutine's defer list, whose records are reused. `docs/defer-panic-recover.md` has
/// the whole design.
///
/// # Example
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// #[gort::func]
/// fn example(log: Rc<Cell<u32>>) -> u32 {
///     let l = log.clone();
///     defer!(move || l.set(l.get() * 10 + 1)); // runs second
///     let now = log.get();
///     defer!(log.set(7)); // runs first
///     now // 0: deferred calls run after the body
/// }
///
/// let log = Rc::new(Cell::new(0));
/// assert_eq!(example(log.clone()), 0);
/// assert_eq!(log.get(), 71);
/// ```
///
/// `log` is evaluated (moved) at its `defer!`, as the receiver of a call; the first
/// closure got a clone of its own.
pub use gort_macros::func;

/// Makes a closure or a block a frame, like `#[gort::func]` for a function.
///
/// - `gort::frame!(move || { ... })` is a closure whose body is a frame (for `gort::run`,
///   `gort::spawn`, or any closure that should hold `defer!`s);
/// - `gort::frame! { ... }` runs a block as a frame now and gives its value (Go's
///   `func() { ... }()`).
///
/// # Example
///
/// ```
/// let v = gort::run(gort::frame!(|| {
///     let r = gort::frame! {
///         defer!(|r: &mut gort::Named<i32>| {
///             if gort::recover().is_some() {
///                 r.set(-1);
///             }
///         });
///         panic!("fails")
///     };
///     r
/// }));
/// assert_eq!(v, -1);
/// ```
pub use gort_macros::frame;

/// Registers a deferred call in the enclosing frame (`#[gort::func]`, [`frame!`], a `go!`
/// closure, `#[gort::main]` or `#[gort::test]`); see [`func`] for the forms.
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// #[gort::func]
/// fn count(log: Arc<Mutex<Vec<i32>>>) {
///     for i in 0..3 {
///         let l = log.clone();
///         defer!(move || l.lock().unwrap().push(i)); // Go: defer func() { ... }()
///     }
/// }
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// count(log.clone());
/// assert_eq!(*log.lock().unwrap(), [2, 1, 0]); // newest first, as in Go
/// ```
///
/// Outside a frame, or inside a closure that is not itself a frame, `defer!` does not compile:
/// it never binds to an outer frame.
///
/// ```compile_fail
/// fn not_a_frame() {
///     gort::defer!(println!("no frame here"));
/// }
/// ```
pub use gort_macros::defer;

/// Waits on several channel operations and completes exactly one (Go's `select`).
///
/// ```text
/// gort::select! {
///     recv(ch) -> v => ...,        // v: Option<T> (None: ch is closed)
///     send(ch, value) => ...,
///     default => ...,              // optional: when no case is ready
/// }
/// ```
///
/// - A ready case is chosen uniformly at random (Go's fairness).
/// - `ch` is a `Chan<T>` or an `Option<Chan<T>>` (or a reference to either); `None` and
///   `Chan::nil()` are Go's nil channel: never ready.
/// - Without a ready case and without `default`, the goroutine parks on all the channels at
///   once; a timeout is a `recv(gort::time::after(d)) -> _` case.
/// - A `send` on a closed channel panics (`send on closed channel`), as in Go.
/// - Channel expressions and values are evaluated once, in order, before any case is tried.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let (a, b) = (gort::Chan::new(1), gort::Chan::<&str>::new(1));
///     a.send(1);
///     let mut got = None;
///     gort::select! {
///         recv(a) -> v => got = v,
///         recv(b) -> v => got = v.map(|s| s.len()).map(|n| n as i32),
///         recv(gort::time::after(Duration::from_secs(1))) -> _ => panic!("timed out"),
///     }
///     assert_eq!(got, Some(1));
///     gort::select! {
///         send(b, "full?") => {}
///         default => unreachable!("b has room"),
///     }
/// });
/// ```
pub use gort_macros::select;

/// Panics with an error value, as Go's `panic(err)`: [`Panic::as_error`] gives it back and the
/// crash report prints its message.
///
/// # Example
///
/// ```
/// #[gort::func]
/// fn fails() -> String {
///     defer!(|r| {
///         let p = gort::recover().expect("panicking");
///         r.set(p.as_error().expect("an error").to_string());
///     });
///     gort::panic_error(std::io::Error::other("disk full"))
/// }
/// assert_eq!(gort::run(fails), "disk full");
/// ```
#[track_caller]
pub fn panic_error<E>(err: E) -> !
where
    E: std::error::Error + Send + Sync + 'static,
{
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    std::panic::panic_any(e)
}

/// Runs `f`, on a further stack segment if little of the calling goroutine's stack is left:
/// how a plain recursive function reaches deeper than the goroutine's window.
///
/// A goroutine's stack cannot move or grow in place (there are no stack maps to fix pointers
/// into it; docs/stacks.md). Instead, when less than the red zone (64 KiB, or a quarter of a
/// smaller stack) is left below the stack pointer, `f` runs on a segment of its own, twice the
/// size of the stack it leaves, and the goroutine is back on its own stack when `f` returns or
/// unwinds. Every `#[gort::func]` function does this check on entry, so recursion through
/// them reaches as deep as Go's does (up to [`debug::set_max_stack`], 1 GB by default);
/// wrap the recursive call of a plain function in `maybe_grow` for the same. Plain code called
/// from a checked frame can always use the red zone; a single frame with more locals than the
/// red zone (64 KiB) can still run off a stack (Go's prologue counts the frame's size; gort's
/// check cannot see it).
///
/// The check is a compare of the stack pointer with the goroutine's stack guard and a branch
/// (on x86-64 glibc; a call elsewhere). A call that has to switch onto a segment costs about
/// 30 ns more, and taking a segment from the stack pool well under a microsecond (the last
/// segment left is kept for the next time, until the goroutine ends or parks long enough for
/// copy-out). Outside a goroutine,
/// `f` just runs: a plain thread's stack is what it is.
///
/// # Example
///
/// ```
/// // 100,000 levels of about 1 KiB each: about 100 MiB, far past a goroutine's 256 KiB
/// // window (and a std thread's 2 MiB stack).
/// fn depth(n: u64) -> u64 {
///     let pad = std::hint::black_box([n; 128]);
///     if n == 0 {
///         return pad[0];
///     }
///     gort::maybe_grow(|| depth(n - 1)) + pad[1]
/// }
/// gort::run(|| {
///     let h = gort::spawn(|| depth(100_000));
///     assert_eq!(h.join(), (0..=100_000).sum::<u64>());
/// });
/// ```
#[inline(always)]
pub fn maybe_grow<R, F: FnOnce() -> R>(f: F) -> R {
    sched::grow::maybe_grow(f)
}

/// Panics with any printable value, as Go's `panic(v)` does with a `Stringer`: the crash
/// report prints its `Display` text, [`Panic`]'s `Display` shows the same text, and
/// [`Panic::downcast_ref`] gives the value back.
///
/// Values given to [`std::panic::panic_any`] print as text only when gort knows their type
/// (strings, numbers, `bool`, `char`, boxed errors, a recovered [`Panic`]); for anything else
/// use this (or [`panic_error`] for an error, so that [`Panic::as_error`] sees it).
///
/// # Example
///
/// ```
/// use std::net::Ipv4Addr;
///
/// #[gort::func]
/// fn check(addr: Ipv4Addr) -> String {
///     defer!(|r| {
///         let p = gort::recover().expect("panicking");
///         assert_eq!(p.downcast_ref::<Ipv4Addr>(), Some(&addr));
///         r.set(p.to_string());
///     });
///     gort::panic(addr) // an unrecovered panic would print `panic: 127.0.0.1`
/// }
/// assert_eq!(gort::run(|| check(Ipv4Addr::LOCALHOST)), "127.0.0.1");
/// ```
#[track_caller]
pub fn panic<T>(value: T) -> !
where
    T: std::fmt::Display + Send + 'static,
{
    std::panic::panic_any(panic::value::Printable::new(value))
}

/// Starts a goroutine: `go!(f(a, b))`, `go!(obj.method(a))` or `go!(move || ...)`.
///
/// As in Go, the function value, the receiver and the arguments are evaluated where `go!`
/// stands, in the calling goroutine; the call itself runs in the new goroutine. `go!` returns
/// nothing (use [`spawn`] for a [`JoinHandle`]). Called from a goroutine, the new goroutine
/// runs next on the same processor (Go's `runnext`); from a plain thread that entered a
/// runtime with [`Handle::enter`], it goes to the global run queue.
///
/// The closure, its arguments and everything the goroutine keeps must be `Send + 'static`:
/// **a goroutine may resume on another OS thread** after any blocking call or yield. Do not
/// hold thread-bound values (`thread_local!` borrows, `Rc`, std `MutexGuard`s) across one;
/// use [`goroutine_local!`] instead. See `docs/caveats.md`.
///
/// # Panics
/// Outside a runtime: `go!` must run in a goroutine or on a thread inside [`Handle::enter`].
///
/// # Example
///
/// ```
/// fn greet(name: String, wg: gort::WaitGroup) {
///     println!("hello, {name}");
///     wg.done();
/// }
///
/// gort::run(|| {
///     let wg = gort::WaitGroup::new();
///     let mut name = String::from("gopher");
///     wg.add(2);
///     gort::go!(greet(name.clone(), wg.clone())); // evaluated now: prints "hello, gopher"
///     name.push_str("s");
///     let w = wg.clone();
///     gort::go!(move || greet(name, w));
///     wg.wait();
/// });
/// ```
pub use gort_macros::go;

/// Runs `fn main` as goroutine 1 of a runtime; the process exits when it returns.
///
/// As in Go, other goroutines are not awaited when main returns. An unrecovered panic in any
/// goroutine prints Go's `panic: ...` report and exits with status 2. GOMAXPROCS comes from
/// the environment (default: the number of CPUs) unless `procs = N` sets it;
/// `stack_size = BYTES` sets the goroutine stack window (as [`Builder::procs`] and
/// [`Builder::stack_size`]).
///
/// ```
/// #[gort::main]
/// fn main() {
///     gort::go!(move || println!("may or may not print: main does not wait"));
///     println!("main is goroutine {}", gort::goid());
/// }
/// ```
///
/// ```
/// #[gort::main(procs = 2, stack_size = 1 << 20)]
/// fn main() {
///     assert_eq!(gort::gomaxprocs(), 2);
/// }
/// ```
pub use gort_macros::main;

/// Runs a test body as goroutine 1 of its own runtime (`gort::run`), so a panic anywhere in
/// the test's goroutines fails the test. `#[gort::test(procs = 4)]` sets GOMAXPROCS,
/// `stack_size = BYTES` the goroutine stack window (as for [`main`]).
///
/// ```
/// // In a test module; `cargo test` runs it on its own 2-processor runtime.
/// #[gort::test(procs = 2)]
/// fn spawns() {
///     assert_eq!(gort::spawn(|| 1 + 1).join(), 2);
/// }
/// ```
pub use gort_macros::test;

/// Configures and starts a runtime.
///
/// ```
/// let procs = gort::Builder::new()
///     .procs(2)
///     .stack_size(128 * 1024)
///     .thread_name("worker-")
///     .run(gort::gomaxprocs);
/// assert_eq!(procs, 2);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    procs: Option<usize>,
    stack_size: usize,
    thread_name: String,
    max_threads: usize,
    copy_out: bool,
}

/// Default usable stack window per goroutine. Plain code reaches this deep; recursion through
/// `#[gort::func]` functions or [`maybe_grow`] calls goes on past it on further segments.
///
/// ```
/// // A runtime whose goroutines recurse deeply through plain functions: four times the
/// // default.
/// let b = gort::Builder::new().stack_size(4 * gort::DEFAULT_STACK_SIZE);
/// assert_eq!(b.run(|| 1 + 1), 2);
/// ```
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Usable stack window of goroutine 1 (the body of [`run`], [`main`] and [`test`]) when the
/// runtime's stack size is smaller: 8 MiB, the main thread's stack on Linux (`ulimit -s`).
///
/// A program moved from `fn main` to `#[gort::main]` keeps the recursion depth its main
/// thread had. Other goroutines get the runtime's window ([`DEFAULT_STACK_SIZE`] unless
/// [`Builder::stack_size`] says otherwise); docs/stacks.md says why it is not 8 MiB for all.
///
/// ```
/// // Goroutine 1 recurses through 3 MiB of stack or more (frames are larger in debug
/// // builds), which a default goroutine and a spawned thread cannot.
/// fn depth(n: u32) -> u32 {
///     let pad = std::hint::black_box([n as u8; 1024]);
///     if n == 0 { u32::from(pad[0]) } else { 1 + depth(n - 1) }
/// }
/// assert!(gort::MAIN_STACK_SIZE > 6 * 1024 * 1024);
/// assert_eq!(gort::run(|| depth(3000)), 3000);
/// ```
pub const MAIN_STACK_SIZE: usize = sched::MAIN_STACK_SIZE;

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// Defaults: GOMAXPROCS from the `GOMAXPROCS` environment variable if it holds a positive
    /// number, else the number of CPUs; 256 KiB stacks; threads named `gort-m0`, `gort-m1`, ...
    ///
    /// ```
    /// let b = gort::Builder::new();
    /// assert_eq!(b.run(|| gort::num_goroutine()), 1);
    /// ```
    pub fn new() -> Builder {
        Builder {
            procs: None,
            stack_size: DEFAULT_STACK_SIZE,
            thread_name: "gort-m".to_string(),
            max_threads: 10_000,
            copy_out: !cfg!(feature = "sanitizer"),
        }
    }

    /// Whether the stacks of goroutines parked for a while are copied out to the heap and
    /// their pages given back to the kernel (default: on; sanitizer builds: off). It starts
    /// only once 10,000 goroutines are alive, and touches goroutines parked for about a second
    /// or more; resuming one copies its stack back first (a page fault and a copy of its live
    /// bytes, a microsecond or two). See docs/stacks.md.
    ///
    /// ```
    /// assert_eq!(gort::Builder::new().copy_out_parked(false).run(|| 1), 1);
    /// ```
    pub fn copy_out_parked(mut self, on: bool) -> Builder {
        self.copy_out = on && !cfg!(feature = "sanitizer");
        self
    }

    /// Sets the most threads the runtime may start (Go's `debug.SetMaxThreads`; default
    /// 10,000). Threads blocked in calls gort cannot see do not count against GOMAXPROCS, so a
    /// program that blocks many goroutines at once (see [`blocking`]) needs one thread each;
    /// past this limit the program ends with `fatal error: thread exhaustion`.
    ///
    /// ```
    /// assert_eq!(gort::Builder::new().max_threads(64).run(|| 1), 1);
    /// ```
    pub fn max_threads(mut self, n: usize) -> Builder {
        self.max_threads = n.max(1);
        self
    }

    /// Sets GOMAXPROCS, overriding the environment. Zero is treated as one.
    ///
    /// ```
    /// assert_eq!(gort::Builder::new().procs(3).run(gort::gomaxprocs), 3);
    /// ```
    pub fn procs(mut self, n: usize) -> Builder {
        self.procs = Some(n.max(1));
        self
    }

    /// Sets the default usable stack size of goroutines (rounded up to whole pages, at least
    /// 16 KiB). Each goroutine reserves this much address space; memory is committed only as
    /// pages are touched. [`GoBuilder::stack_size`] overrides it for one goroutine.
    ///
    /// # Panics
    /// Above 1 GiB, the largest goroutine stack (Go's limit too).
    ///
    /// ```
    /// gort::Builder::new().stack_size(1 << 20).run(|| {
    ///     fn depth(n: u64) -> u64 { let pad = [n; 64]; if n == 0 { pad[0] } else { depth(n - 1) + pad[1] } }
    ///     assert!(depth(1000) > 0);
    /// });
    /// ```
    #[track_caller]
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        coro::stack::check_size(bytes, "Builder::stack_size");
        self.stack_size = bytes;
        self
    }

    /// Sets the prefix of M thread names (the M number is appended).
    ///
    /// ```
    /// let name = gort::Builder::new().thread_name("rt-").run(|| {
    ///     std::thread::current().name().unwrap().to_string()
    /// });
    /// assert!(name.starts_with("rt-"));
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    fn config(&self, mode: sched::RunMode) -> sched::Config {
        let procs = self.procs.unwrap_or_else(|| {
            std::env::var("GOMAXPROCS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(num_cpus::get)
        });
        let (schedtrace_ms, scheddetail) = debug::godebug();
        sched::Config {
            procs,
            stack_size: self.stack_size,
            thread_name: self.thread_name.clone(),
            mode,
            test_harness: false,
            max_threads: self.max_threads,
            schedtrace_ms,
            scheddetail,
            copy_out: self.copy_out,
        }
    }

    /// Runs `f` as goroutine 1 of a new runtime; see [`run`].
    ///
    /// ```
    /// assert_eq!(gort::Builder::new().procs(1).run(|| 7), 7);
    /// ```
    pub fn run<F, T>(self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        start(self.config(sched::RunMode::Embedded), f)
    }
}

/// Every runtime starts here: the process-wide set-up, then the scheduler.
fn start<F, T>(config: sched::Config, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    process_init();
    sched::run_main(config, f)
}

/// What a process needs once, before its first runtime: the scheduler's hooks lent to `coro`
/// (`sched::lend_to_coro`), the stack-overflow signal handler (`coro::signal`), the panic
/// hook that keeps goroutines' panics Go-shaped (`panic`), and Go's `SIGQUIT` goroutine dump
/// (`debug`). Each is idempotent.
fn process_init() {
    sched::lend_to_coro();
    coro::signal::install();
    panic::install_hook();
    debug::install_sigquit();
}

/// Starts a runtime, runs `f` as goroutine 1 (Go's main) and returns its value.
///
/// `run` returns as soon as `f` returns, without waiting for other goroutines (Go's rule for
/// main). The runtime then shuts down: goroutines still alive are discarded without running
/// any more of their code (values on their stacks are leaked, not dropped) and their stacks are
/// unmapped. A goroutine still running 20 ms after `f` returned (a blocking call, a loop
/// without a scheduling point) is not waited for: its thread loses its processor and is left
/// to finish on its own. The procedure, step by step: `Shared::shutdown`
/// (`runtime/src/sched/shared.rs`).
///
/// A panic that no goroutine recovers is re-raised here, in the calling thread, so that a test
/// fails instead of the process exiting. Runtimes are independent: several may run one after
/// another or side by side.
///
/// ```
/// let v = gort::run(|| {
///     gort::go!(move || loop { gort::yield_now() }); // never finishes: discarded at return
///     "main's value"
/// });
/// assert_eq!(v, "main's value");
/// ```
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().run(f)
}

/// Starts `f` in a new goroutine and returns a [`JoinHandle`] for its result.
///
/// The Rust-style companion of [`go!`]. Must be called from a goroutine or a thread inside
/// [`Handle::enter`].
///
/// ```
/// gort::run(|| {
///     let handles: Vec<_> = (0..4).map(|i| gort::spawn(move || i * i)).collect();
///     let squares: Vec<i32> = handles.into_iter().map(|h| h.join()).collect();
///     assert_eq!(squares, [0, 1, 4, 9]);
/// });
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    GoBuilder::new().spawn(f)
}

/// Where a joinable goroutine starts.
enum SpawnAt<'a> {
    /// The caller's runtime (a goroutine, or a thread inside `Handle::enter`), with an optional
    /// stack size.
    Current(Option<usize>),
    /// A given runtime, from any thread.
    Runtime(&'a Arc<sched::Shared>),
}

/// Starts `f` and wires its result to a `JoinHandle` (shared by `spawn`, `GoBuilder::spawn`
/// and `Handle::spawn`).
#[track_caller]
fn spawn_joinable<F, T>(f: F, at: SpawnAt<'_>) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = join::Slot::new();
    let result = slot.clone();
    let body = move || result.complete(f());
    let notify: Option<Arc<dyn sched::ExitNotify>> = Some(slot.clone());
    let id = match at {
        SpawnAt::Current(stack_size) => {
            sched::spawn(body, stack_size, notify, std::any::type_name::<F>)
        }
        SpawnAt::Runtime(shared) => {
            let at = std::panic::Location::caller();
            let entry = std::any::type_name::<F>;
            sched::spawn_external(shared, body, None, notify, Some((at, 0)), entry)
        }
    };
    JoinHandle::new(slot, id)
}

/// Options for starting one goroutine.
///
/// ```
/// gort::run(|| {
///     let deep = gort::GoBuilder::new().stack_size(4 << 20).spawn(|| {
///         fn sum(n: u64) -> u64 { let pad = [n; 32]; if n == 0 { 0 } else { pad[3] + sum(n - 1) } }
///         sum(10_000)
///     });
///     assert_eq!(deep.join(), 50_005_000);
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct GoBuilder {
    stack_size: Option<usize>,
}

impl GoBuilder {
    /// Default options: the runtime's stack size.
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::GoBuilder::new().spawn(|| "same as gort::spawn");
    ///     assert_eq!(h.join(), "same as gort::spawn");
    /// });
    /// ```
    pub fn new() -> GoBuilder {
        GoBuilder::default()
    }

    /// This goroutine's usable stack size: the runtime's default if it rounds to that (whole
    /// pages), otherwise the next power of two (at least 16 KiB), so that programs asking for
    /// many different sizes share a few pools of stacks.
    ///
    /// # Panics
    /// Above 1 GiB, the largest goroutine stack (Go's limit too).
    ///
    /// ```
    /// let r = std::panic::catch_unwind(|| gort::GoBuilder::new().stack_size(usize::MAX));
    /// assert!(r.is_err());
    /// ```
    #[track_caller]
    pub fn stack_size(mut self, bytes: usize) -> GoBuilder {
        coro::stack::check_size(bytes, "GoBuilder::stack_size");
        self.stack_size = Some(bytes);
        self
    }

    /// Starts `f` like [`spawn`].
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::GoBuilder::new().stack_size(32 * 1024).spawn(|| gort::goid());
    ///     assert!(h.join() > 1); // main is 1
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_joinable(f, SpawnAt::Current(self.stack_size))
    }

    /// Starts `f` like [`go!`], without a handle.
    ///
    /// ```
    /// gort::run(|| {
    ///     let wg = gort::WaitGroup::new();
    ///     wg.add(1);
    ///     let w = wg.clone();
    ///     gort::GoBuilder::new().stack_size(64 * 1024).go(move || w.done());
    ///     wg.wait();
    /// });
    /// ```
    #[track_caller]
    pub fn go<F>(self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        sched::spawn(f, self.stack_size, None, std::any::type_name::<F>);
    }
}

/// A handle to a running runtime, for plain threads that need to start goroutines in it.
///
/// ```
/// gort::run(|| {
///     let h = gort::Handle::current();
///     let t = std::thread::spawn(move || {
///         let _in = h.enter();
///         gort::spawn(|| gort::goid()).join() // a plain thread blocks in join
///     });
///     assert!(t.join().unwrap() > 1);
/// });
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<sched::Shared>,
}

impl Handle {
    /// The runtime of the calling goroutine (or of the thread's innermost [`Handle::enter`]).
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// ```
    /// gort::Builder::new().procs(2).run(|| {
    ///     let h = gort::Handle::current();
    ///     let procs = std::thread::spawn(move || h.spawn(gort::gomaxprocs).join());
    ///     assert_eq!(procs.join().unwrap(), 2); // ran in this runtime
    /// });
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        match sched::current_shared() {
            Some(shared) => Handle { shared },
            None => panic!("gort: Handle::current called outside a gort runtime"),
        }
    }

    /// Makes [`go!`] and [`spawn`] on this thread start goroutines in this runtime until the
    /// guard is dropped.
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::Handle::current();
    ///     std::thread::spawn(move || {
    ///         let _guard = h.enter();
    ///         let ch = gort::Chan::new(0);
    ///         let tx = ch.clone();
    ///         gort::go!(move || tx.send("from a goroutine")); // started in `h`'s runtime
    ///         assert_eq!(ch.recv(), Some("from a goroutine")); // the plain thread blocks
    ///     })
    ///     .join()
    ///     .unwrap();
    /// });
    /// ```
    pub fn enter(&self) -> EnterGuard {
        sched::enter(self.shared.clone());
        EnterGuard {
            _not_send: std::marker::PhantomData,
        }
    }

    /// Starts `f` in this runtime from any thread.
    ///
    /// ```
    /// gort::run(|| {
    ///     let h = gort::Handle::current();
    ///     let v = std::thread::spawn(move || h.spawn(|| 5).join()).join().unwrap();
    ///     assert_eq!(v, 5);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_joinable(f, SpawnAt::Runtime(&self.shared))
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("procs", &self.shared.config.procs)
            .finish()
    }
}

/// Returned by [`Handle::enter`]; leaves the runtime when dropped.
///
/// ```
/// gort::run(|| {
///     let h = gort::Handle::current();
///     std::thread::spawn(move || {
///         let guard = h.enter();
///         assert_eq!(gort::num_goroutine(), 1); // the thread sees the runtime
///         drop(guard);
///         // Left it: gort::go! and gort::spawn would panic here again.
///         assert!(std::panic::catch_unwind(gort::num_goroutine).is_err());
///     })
///     .join()
///     .unwrap();
/// });
/// ```
pub struct EnterGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        sched::exit_entered();
    }
}

impl std::fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// Runs `f`, which may block its thread for a long time (file I/O, a blocking library, a
/// `std::sync` lock, DNS), without holding up other goroutines: Go's system-call hand-off,
/// tokio's `block_in_place`.
///
/// If goroutines already wait for this goroutine's processor, it is handed to another thread
/// at once; otherwise sysmon hands it off after 20 µs if any start waiting. When `f` returns
/// and nobody took the processor, the call costs two stores: use it freely around calls that
/// *may* block. Outside a goroutine it just calls `f`.
///
/// Unmarked blocking calls are handled too (sysmon sees a thread asleep in the kernel, or a
/// goroutine computing for 10 ms while others wait), only later.
///
/// ```
/// use std::time::Duration;
/// gort::Builder::new().procs(1).run(|| {
///     let wg = gort::WaitGroup::new();
///     wg.add(1);
///     let w = wg.clone();
///     gort::go!(move || {
///         // Blocks its thread for 50 ms; the other goroutines keep running meanwhile.
///         gort::blocking(|| std::thread::sleep(Duration::from_millis(50)));
///         w.done();
///     });
///     gort::yield_now();
///     assert!(!gort::blocking(|| std::path::Path::new("/").exists()) == false);
///     wg.wait();
/// });
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    sched::syscall::blocking(f)
}

/// Yields the processor so other goroutines can run (Go's `runtime.Gosched`). The goroutine
/// goes to the back of its processor's run queue and resumes later, possibly on another thread.
///
/// # Panics
/// Outside a goroutine.
///
/// ```
/// gort::Builder::new().procs(1).run(|| {
///     let h = gort::spawn(|| "child ran");
///     gort::yield_now(); // with one processor, the child runs now
///     assert!(h.is_finished());
/// });
/// ```
#[track_caller]
pub fn yield_now() {
    sched::yield_now()
}

/// The running goroutine's id: 1 for main, then increasing in order of creation.
///
/// # Panics
/// Outside a goroutine.
///
/// ```
/// gort::run(|| assert_eq!(gort::goid(), 1));
/// ```
#[track_caller]
pub fn goid() -> u64 {
    let g = sched::expect_g("gort::goid");
    // SAFETY: the running goroutine's record is alive while it runs.
    unsafe { (*g).id() }
}

/// The number of goroutines that exist now (Go's `runtime.NumGoroutine`), including main.
///
/// # Panics
/// Outside a runtime.
///
/// ```
/// gort::run(|| assert_eq!(gort::num_goroutine(), 1));
/// ```
#[track_caller]
pub fn num_goroutine() -> usize {
    match sched::with_current_shared(|s| s.num_goroutine()) {
        Some(n) => n,
        None => panic!("gort::num_goroutine called outside a gort runtime"),
    }
}

/// The number of processors (Go's `runtime.GOMAXPROCS(0)`).
///
/// # Panics
/// Outside a runtime.
///
/// ```
/// assert_eq!(gort::Builder::new().procs(2).run(gort::gomaxprocs), 2);
/// ```
#[track_caller]
pub fn gomaxprocs() -> usize {
    match sched::with_current_shared(|s| s.config.procs) {
        Some(n) => n,
        None => panic!("gort::gomaxprocs called outside a gort runtime"),
    }
}

/// Used by gort-macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::chan::{select, CaseChan, RecvCase, SelectCase, SendCase};
    pub use crate::panic::chain::DeferRecover;
    pub use crate::panic::frame::{Frame, FrameGuard, OpenSlot};
    pub use crate::panic::named::HasResult;
    pub use crate::panic::record::{Plain, WithResult};
    pub use crate::sched::grow::maybe_grow as grow;

    /// Used by gort-macros: finds a frame result type's zero value (Go's zero value) by
    /// autoref specialisation: `Default`, else `Ok(Default)` for a `Result`, else none.
    pub struct ZeroProbe<T>(core::marker::PhantomData<fn() -> T>);

    impl<T> Clone for ZeroProbe<T> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<T> Copy for ZeroProbe<T> {}

    impl<T> ZeroProbe<T> {
        /// A probe for the value type of a frame body's outcome.
        #[inline(always)]
        pub fn of<E>(_: &Result<T, E>) -> ZeroProbe<T> {
            ZeroProbe(core::marker::PhantomData)
        }
    }

    /// The zero value where the type is only known after inference (see gort-macros'
    /// `diverges`): `()` has one, other types none.
    pub fn unit_zero<R>() -> Option<fn() -> R> {
        fn unit<R>() -> R {
            assert_eq!(core::mem::size_of::<R>(), 0);
            // SAFETY: only called when `R` is `()` (checked by name below), which has exactly
            // one value and no bytes.
            unsafe { core::mem::zeroed() }
        }
        (core::any::type_name::<R>() == "()").then_some(unit::<R>)
    }

    /// The zero of a `Default` type.
    pub trait ZeroDefault<T> {
        /// The zero-value function.
        fn zero(self) -> Option<fn() -> T>;
    }
    impl<T: Default> ZeroDefault<T> for &&ZeroProbe<T> {
        #[inline(always)]
        fn zero(self) -> Option<fn() -> T> {
            Some(T::default)
        }
    }

    /// The zero of a `Result` whose `Ok` type is `Default`: Go's `(zero, nil)`.
    pub trait ZeroResult<T> {
        /// The zero-value function.
        fn zero(self) -> Option<fn() -> T>;
    }
    impl<T: Default, E> ZeroResult<Result<T, E>> for &ZeroProbe<Result<T, E>> {
        #[inline(always)]
        fn zero(self) -> Option<fn() -> Result<T, E>> {
            Some(|| Ok(T::default()))
        }
    }

    /// No zero value.
    pub trait ZeroNone<T> {
        /// `None`.
        fn zero(self) -> Option<fn() -> T>;
    }
    impl<T> ZeroNone<T> for ZeroProbe<T> {
        #[inline(always)]
        fn zero(self) -> Option<fn() -> T> {
            None
        }
    }

    /// Used by gort-macros: the expansion of `go!`.
    #[inline]
    #[track_caller]
    pub fn go<F>(f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        crate::sched::spawn(f, None, None, std::any::type_name::<F>);
    }

    /// Used by gort-macros: the name of `go!(f(a, b))`'s `f`, the goroutine's entry (named
    /// in reports that cannot walk frames) rather than the closure that calls it.
    #[inline(always)]
    pub fn entry_name_of<Fun>(_: &Fun) -> fn() -> &'static str {
        std::any::type_name::<Fun>
    }

    /// Used by gort-macros: `go!(f(a, b))`, with `f`'s name (`entry_name_of`).
    #[inline]
    #[track_caller]
    pub fn go_named<F>(name: fn() -> &'static str, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        crate::sched::spawn(f, None, None, name);
    }

    /// Used by gort-macros: the received value of the `select!` case that won (`select!`
    /// takes it out right after the select, before any arm runs).
    #[inline(always)]
    pub fn select_won<T>(v: Option<Option<T>>) -> Option<T> {
        match v {
            Some(v) => v,
            None => crate::panic::throw("select!: the winning case has no value"),
        }
    }

    /// Used by gort-macros: drops a goroutine function's result (Go discards it).
    #[inline(always)]
    pub fn discard<T>(_: T) {}

    /// Used by gort-macros: the body of `#[gort::main]`.
    #[track_caller]
    pub fn main<F, T>(procs: Option<usize>, stack_size: Option<usize>, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let cfg = builder(procs, stack_size).config(crate::sched::RunMode::Process);
        crate::start(cfg, f)
    }

    #[track_caller]
    fn builder(procs: Option<usize>, stack_size: Option<usize>) -> crate::Builder {
        let mut b = crate::Builder::new();
        if let Some(n) = procs {
            b = b.procs(n);
        }
        if let Some(n) = stack_size {
            b = b.stack_size(n);
        }
        b
    }

    /// Used by gort-macros: the body of `#[gort::test]`.
    #[track_caller]
    pub fn test<F, T>(procs: Option<usize>, stack_size: Option<usize>, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut cfg = builder(procs, stack_size).config(crate::sched::RunMode::Embedded);
        cfg.test_harness = true;
        crate::start(cfg, f)
    }
}
