//! Time (Go's `time` package, the parts that block): [`sleep`], [`after`], [`tick`],
//! [`Timer`] and [`Ticker`].
//!
//! A sleeping goroutine holds no thread: it parks on a timer of its P's timer heap
//! (`sched/timers.rs`), and the schedule loop readies it when the timer is due. A `Timer` or
//! `Ticker` sends the current time on its channel (buffer 1, never blocking: a tick nobody
//! received is dropped, as in Go).
//!
//! `sleep` works anywhere (a plain thread sleeps); timers need a runtime: inside a goroutine,
//! or on a thread that entered one with `Handle::enter`.
//!
//! [`Sleep`] is the one future here: what async code (a future run with
//! [`block_on`](crate::block_on)) awaits instead of blocking in `sleep`.
//!
//! ```
//! use std::time::Duration;
//! gort::run(|| {
//!     let ticker = gort::time::Ticker::new(Duration::from_millis(1)); // Go: time.NewTicker
//!     let timeout = gort::time::after(Duration::from_secs(5)); // Go: time.After
//!     let mut ticks = 0;
//!     while ticks < 3 {
//!         gort::select! {
//!             recv(ticker.chan()) -> _ => ticks += 1,
//!             recv(timeout) -> _ => panic!("timed out"),
//!         }
//!     }
//! });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::chan::Chan;
use crate::sched::timers::{self, Fire, Target, TimerFunc};
use crate::sched::{self, Shared, WaitReason};

/// A future that completes at a deadline (tokio's `Sleep`): a task timer on the runtime's
/// timer heaps, which wakes the task (its `Waker`) rather than a goroutine. Dropping it first
/// cancels the timer.
///
/// Made in a goroutine or on a thread inside [`Handle::enter`](crate::Handle::enter): that
/// runtime's timers fire it, and the task may be polled anywhere (a goroutine's
/// [`block_on`](crate::block_on), a plain thread's, another runtime's executor). If that
/// runtime shuts down first, the sleep ends then (no timer of it will fire any more).
///
/// ```
/// use std::time::{Duration, Instant};
/// gort::run(|| {
///     let t = Instant::now();
///     gort::block_on(async {
///         gort::time::Sleep::new(Duration::from_millis(20)).await;
///     });
///     assert!(t.elapsed() >= Duration::from_millis(20));
/// });
/// ```
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    shared: Arc<Shared>,
    /// Armed at the first poll that finds the deadline ahead: the timer and its heap.
    armed: Option<(Arc<timers::TaskTimer>, usize)>,
}

impl Sleep {
    /// A sleep of `d` from now.
    ///
    /// # Panics
    /// Outside a runtime (a goroutine, or a thread inside `Handle::enter`).
    #[track_caller]
    pub fn new(d: Duration) -> Sleep {
        Sleep::until(Instant::now() + d)
    }

    /// A sleep until `deadline` (at once if it passed).
    ///
    /// # Panics
    /// Outside a runtime (a goroutine, or a thread inside `Handle::enter`).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// gort::run(|| {
    ///     let at = Instant::now() + Duration::from_millis(5);
    ///     gort::block_on(gort::time::Sleep::until(at));
    ///     assert!(Instant::now() >= at);
    /// });
    /// ```
    #[track_caller]
    pub fn until(deadline: Instant) -> Sleep {
        let Some(shared) = sched::current_shared() else {
            panic!(
                "gort::time::Sleep made outside a gort runtime: make it in a goroutine, or on \
                 a thread inside Handle::enter"
            );
        };
        Sleep {
            deadline,
            shared,
            armed: None,
        }
    }

    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl std::future::Future for Sleep {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        if let Some((t, _)) = &self.armed {
            return if t.poll_fired(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        if Instant::now() >= self.deadline || self.shared.is_shutdown() {
            return Poll::Ready(());
        }
        let t = Arc::new(timers::TaskTimer::new(cx.waker().clone()));
        let when = timers::nanos_since(self.shared.epoch, self.deadline);
        let p = sched::add_timer(
            &self.shared,
            when,
            Fire::Call(Target::Counted(t.clone()), 0),
        );
        self.armed = Some((t, p));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((t, p)) = self.armed.take() {
            if t.cancel() {
                self.shared.procs[p].timers.note_stale();
            }
        }
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Pauses the calling goroutine for `d` (Go's `time.Sleep`); its thread runs other goroutines
/// meanwhile. Outside a goroutine, sleeps the thread. A zero duration returns at once.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// gort::run(|| {
///     let t = Instant::now();
///     gort::time::sleep(Duration::from_millis(20));
///     assert!(t.elapsed() >= Duration::from_millis(20));
/// });
/// ```
#[track_caller]
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return;
    }
    let Some(gp) = sched::current_g() else {
        std::thread::sleep(d);
        return;
    };
    if !sched::may_park() {
        // Unwinding a panic: the goroutine stays on its thread (`sched::may_park`).
        sched::syscall::blocking(|| std::thread::sleep(d));
        return;
    }
    // SAFETY: the running goroutine's record is alive.
    let shared: &Arc<Shared> = unsafe { &(*gp).shared };
    let when = timers::deadline(shared.epoch, d);
    sched::park(WaitReason::Sleep, move |g| {
        let _ = sched::add_timer_here(when, Fire::Wake(g));
        None
    });
}

/// Runs `f` in a new goroutine once `d` has passed (Go's `time.AfterFunc`). The returned
/// [`Timer`] stops it ([`Timer::stop`] is true if `f` had not started) or re-arms it
/// ([`Timer::reset`]: `f` runs again, in another goroutine). `f` runs on the timer's runtime
/// even if the caller is gone by then; it is `Fn` because a reset timer calls it again.
///
/// # Panics
/// Outside a runtime.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let done: gort::Chan<&str> = gort::Chan::new(1);
///     let d = done.clone();
///     let _t = gort::time::after_func(Duration::from_millis(5), move || {
///         let _ = d.try_send("fired");
///     });
///     assert_eq!(done.recv(), Some("fired"));
///
///     let never = gort::time::after_func(Duration::from_secs(3600), || unreachable!());
///     assert!(never.stop());
/// });
/// ```
#[track_caller]
pub fn after_func<F>(d: Duration, f: F) -> Timer
where
    F: Fn() + Send + Sync + 'static,
{
    Timer::after_func(d, f)
}

/// A channel that receives the time once, `d` from now (Go's `time.After`).
///
/// # Panics
/// Outside a runtime.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let never: gort::Chan<i32> = gort::Chan::new(0);
///     gort::select! {
///         recv(never) -> _ => unreachable!(),
///         recv(gort::time::after(Duration::from_millis(10))) -> t => assert!(t.is_some()),
///     }
/// });
/// ```
#[track_caller]
pub fn after(d: Duration) -> Chan<Instant> {
    Timer::start(d, None, "gort::time::after").core.ch.clone()
}

/// A channel that receives the time every `d`, forever (Go's `time.Tick`: the ticker is
/// never stopped; use [`Ticker`] to stop it).
///
/// # Panics
/// Outside a runtime, or if `d` is zero.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let beat = gort::time::tick(Duration::from_millis(1));
///     let t0 = beat.recv().unwrap();
///     let t1 = beat.recv().unwrap();
///     assert!(t1 > t0);
/// });
/// ```
#[track_caller]
pub fn tick(d: Duration) -> Chan<Instant> {
    assert!(!d.is_zero(), "non-positive interval for NewTicker");
    let t = Ticker {
        timer: Timer::start(d, Some(d), "gort::time::tick"),
    };
    let ch = t.chan().clone();
    std::mem::forget(t);
    ch
}

/// The shared part of a `Timer` or `Ticker`: its channel and the state its heap entries check.
pub(crate) struct TimerCore {
    state: Mutex<CoreState>,
    /// The generation whose heap entry is live, or `NOT_ARMED`: read without the lock by the
    /// heaps' garbage collection (`sched/timers.rs`); written under `state`.
    armed: AtomicU64,
    ch: Chan<Instant>,
    /// `after_func`: run this in a new goroutine instead of sending (and where it was set up,
    /// the goroutine's `created by` site).
    func: Option<(AfterFn, &'static std::panic::Location<'static>)>,
}

type AfterFn = Arc<dyn Fn() + Send + Sync>;

const NOT_ARMED: u64 = u64::MAX;

struct CoreState {
    /// Bumped by stop and reset; heap entries of an older generation do nothing.
    gen: u64,
    active: bool,
    period: Option<Duration>,
    /// When the current entry is due (runtime clock).
    when: u64,
    /// The P whose heap holds the current entry.
    p: usize,
}

impl CoreState {
    /// Makes the current entry garbage (stop, reset); returns its P to tell.
    fn disarm(&mut self, core: &TimerCore) -> Option<usize> {
        let was = self.active;
        self.active = false;
        self.gen += 1;
        core.armed.store(NOT_ARMED, Ordering::Release);
        was.then_some(self.p)
    }
}

impl TimerFunc for TimerCore {
    /// Whether the heap entry of generation `gen` is the live one.
    fn is_armed(&self, gen: u64) -> bool {
        self.armed.load(Ordering::Acquire) == gen
    }

    /// A due heap entry of generation `gen` (runs on an M or sysmon, after the heap's lock is
    /// released).
    fn fire(&self, shared: &Arc<Shared>, gen: u64, me: &Target) {
        let mut st = self.state.lock();
        if st.gen != gen || !st.active {
            return;
        }
        // Sent (or started) under the timer's lock: a `stop` or `reset` that returns after this
        // point sees the value in the channel or the goroutine started, one that returned
        // before it means neither happens.
        match &self.func {
            Some((f, at)) => {
                let f = f.clone();
                // From an M or from sysmon (which runs the timers of busy Ps): onto this
                // timer's runtime either way.
                /// The function behind the `Arc` has no name of its own to give.
                fn entry() -> &'static str {
                    "the function given to gort::time::after_func"
                }
                sched::spawn_external(shared, move || f(), None, None, Some((*at, 0)), entry);
            }
            None => {
                let _ = self.ch.try_send(Instant::now());
            }
        }
        match st.period {
            Some(p) => {
                // Go's ticker: the next tick after now, skipping ticks a slow reader missed.
                // The same generation stays armed; its next entry goes on this M's P.
                let now = timers::nanos_since(shared.epoch, Instant::now());
                let p = p.as_nanos().max(1) as u64;
                let behind = now.saturating_sub(st.when);
                st.when = st.when.saturating_add(p * (1 + behind / p));
                st.p = sched::add_timer(shared, st.when, Fire::Call(me.clone(), gen));
            }
            None => {
                st.active = false;
                self.armed.store(NOT_ARMED, Ordering::Release);
            }
        }
    }
}

#[track_caller]
fn runtime(what: &str) -> Arc<Shared> {
    match sched::current_shared() {
        Some(s) => s,
        None => panic!(
            "gort: {what} must be called inside a gort runtime (a goroutine, or a thread in \
             Handle::enter)"
        ),
    }
}

/// A single event (Go's `time.Timer`): after its duration the current time is sent on
/// [`Timer::chan`]. [`Timer::stop`] and [`Timer::reset`] follow Go.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let t = gort::time::Timer::new(Duration::from_secs(3600));
///     assert!(t.stop()); // stopped before it fired
///     t.reset(Duration::from_millis(5));
///     assert!(t.chan().recv().is_some());
/// });
/// ```
pub struct Timer {
    core: Arc<TimerCore>,
    shared: Arc<Shared>,
}

impl Timer {
    /// A timer that fires once, `d` from now.
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// gort::run(|| {
    ///     let start = Instant::now();
    ///     let t = gort::time::Timer::new(Duration::from_millis(5)); // Go: time.NewTimer(d)
    ///     let fired_at = t.chan().recv().unwrap(); // Go: <-t.C
    ///     assert!(fired_at >= start + Duration::from_millis(5));
    /// });
    /// ```
    #[track_caller]
    pub fn new(d: Duration) -> Timer {
        Timer::start(d, None, "gort::time::Timer::new")
    }

    /// A timer that runs `f` in a new goroutine `d` from now (Go's `time.AfterFunc`); the
    /// same as [`after_func`].
    ///
    /// # Panics
    /// Outside a runtime.
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let fired = gort::Chan::new(1);
    ///     let f = fired.clone();
    ///     let t = gort::time::Timer::after_func(Duration::from_millis(2), move || f.send("ran"));
    ///     assert_eq!(fired.recv(), Some("ran"));
    ///     assert!(!t.stop()); // too late: it ran already
    /// });
    /// ```
    #[track_caller]
    pub fn after_func<F>(d: Duration, f: F) -> Timer
    where
        F: Fn() + Send + Sync + 'static,
    {
        let at = std::panic::Location::caller();
        Timer::start_with(d, None, Some((Arc::new(f), at)), "gort::time::after_func")
    }

    #[track_caller]
    fn start(d: Duration, period: Option<Duration>, what: &str) -> Timer {
        Timer::start_with(d, period, None, what)
    }

    #[track_caller]
    fn start_with(
        d: Duration,
        period: Option<Duration>,
        func: Option<(AfterFn, &'static std::panic::Location<'static>)>,
        what: &str,
    ) -> Timer {
        let shared = runtime(what);
        let when = timers::deadline(shared.epoch, d);
        let core = Arc::new(TimerCore {
            state: Mutex::new(CoreState {
                gen: 0,
                active: true,
                period,
                when,
                p: 0,
            }),
            armed: AtomicU64::new(0),
            ch: Chan::new(1),
            func,
        });
        {
            let mut st = core.state.lock();
            st.p = sched::add_timer(&shared, when, Fire::Call(Target::Counted(core.clone()), 0));
        }
        Timer { core, shared }
    }

    /// The channel the time is sent on (Go's `t.C`). A timer made by [`after_func`] sends
    /// nothing on it (Go's `C` is nil there).
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Timer::new(Duration::from_millis(2));
    ///     let got = gort::select! {
    ///         recv(t.chan()) -> v => v.is_some(), // Go: case <-t.C:
    ///         recv(gort::time::after(Duration::from_secs(10))) -> _ => false,
    ///     };
    ///     assert!(got);
    /// });
    /// ```
    pub fn chan(&self) -> &Chan<Instant> {
        &self.core.ch
    }

    /// Stops the timer; true if it had not fired or been stopped yet. A value already sent
    /// stays in the channel (Go's rule: drain it after a false `stop` if needed).
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Timer::new(Duration::from_secs(3600));
    ///     assert!(t.stop()); // stopped in time
    ///     assert!(!t.stop()); // already stopped
    ///
    ///     let t = gort::time::Timer::new(Duration::from_millis(1));
    ///     gort::time::sleep(Duration::from_millis(5));
    ///     if !t.stop() {
    ///         t.chan().recv(); // Go: if !t.Stop() { <-t.C }
    ///     }
    ///     assert!(t.chan().is_empty());
    /// });
    /// ```
    pub fn stop(&self) -> bool {
        let old = self.core.state.lock().disarm(&self.core);
        if let Some(p) = old {
            self.shared.procs[p].timers.note_stale();
        }
        old.is_some()
    }

    /// Restarts the timer to fire `d` from now; true if it was active.
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Timer::new(Duration::from_secs(3600));
    ///     assert!(t.reset(Duration::from_millis(2))); // it was active
    ///     assert!(t.chan().recv().is_some()); // fires after the new duration
    ///     assert!(!t.reset(Duration::from_millis(2))); // it had fired
    ///     assert!(t.chan().recv().is_some()); // and fires again
    /// });
    /// ```
    pub fn reset(&self, d: Duration) -> bool {
        let mut st = self.core.state.lock();
        let old = st.disarm(&self.core);
        st.active = true;
        st.when = timers::deadline(self.shared.epoch, d);
        self.core.armed.store(st.gen, Ordering::Release);
        // Pushed under the timer's lock, so that `p` names the heap of the live entry when a
        // later stop reads it (the heap's lock nests inside; nothing takes them the other
        // way round: heaps read `armed` without the timer's lock).
        st.p = sched::add_timer(
            &self.shared,
            st.when,
            Fire::Call(Target::Counted(self.core.clone()), st.gen),
        );
        drop(st);
        if let Some(p) = old {
            self.shared.procs[p].timers.note_stale();
        }
        old.is_some()
    }
}

/// Sends the time every period (Go's `time.Ticker`). Dropping it stops it.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let t = gort::time::Ticker::new(Duration::from_millis(2));
///     for _ in 0..3 {
///         t.chan().recv();
///     }
///     t.stop();
/// });
/// ```
pub struct Ticker {
    timer: Timer,
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    /// Outside a runtime, or if `d` is zero (Go: `non-positive interval for NewTicker`).
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Ticker::new(Duration::from_millis(1)); // Go: time.NewTicker(d)
    ///     let (a, b) = (t.chan().recv().unwrap(), t.chan().recv().unwrap());
    ///     assert!(b > a);
    /// }); // dropping the ticker stops it
    /// ```
    #[track_caller]
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "non-positive interval for NewTicker");
        Ticker {
            timer: Timer::start(d, Some(d), "gort::time::Ticker::new"),
        }
    }

    /// The channel ticks are sent on (Go's `t.C`).
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Ticker::new(Duration::from_millis(1));
    ///     let ticks = t.chan().iter().take(3).count(); // Go: for range t.C
    ///     assert_eq!(ticks, 3);
    /// });
    /// ```
    pub fn chan(&self) -> &Chan<Instant> {
        self.timer.chan()
    }

    /// Stops the ticker. Like Go's `Stop`, it does not close the channel: a tick already
    /// sent stays there.
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Ticker::new(Duration::from_millis(1));
    ///     t.chan().recv();
    ///     t.stop(); // Go: t.Stop()
    ///     let _ = t.chan().try_recv(); // a tick sent before the stop, if any
    ///     assert!(t.chan().recv_timeout(Duration::from_millis(10)).is_err()); // no more
    /// });
    /// ```
    pub fn stop(&self) {
        self.timer.stop();
    }

    /// Stops and restarts it with period `d`.
    ///
    /// # Panics
    /// If `d` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// gort::run(|| {
    ///     let t = gort::time::Ticker::new(Duration::from_secs(3600));
    ///     t.reset(Duration::from_millis(1)); // Go: t.Reset(time.Millisecond)
    ///     assert!(t.chan().recv().is_some());
    /// });
    /// ```
    #[track_caller]
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for Ticker.Reset");
        self.timer.core.state.lock().period = Some(d);
        self.timer.reset(d);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.timer.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap_entries() -> usize {
        let shared = sched::current_shared().expect("in a runtime");
        shared.procs.iter().map(|p| p.timers.len()).sum()
    }

    #[test]
    fn stopped_and_reset_timers_leave_bounded_garbage() {
        crate::Builder::new().procs(1).run(|| {
            let hour = Duration::from_secs(3600);
            for _ in 0..10_000 {
                Timer::new(hour).stop();
            }
            let n = heap_entries();
            assert!(n <= 100, "10k new+stop left {n} heap entries");
            let t = Timer::new(hour);
            for i in 0..10_000u64 {
                t.reset(hour + Duration::from_nanos(i));
            }
            let n = heap_entries();
            assert!(n <= 100, "10k resets left {n} heap entries");
            // Live timers are kept: 1000 pending ones, each stopped later.
            let live: Vec<Timer> = (0..1000).map(|_| Timer::new(hour)).collect();
            assert!(heap_entries() >= 1000);
            for t in &live {
                assert!(t.stop());
            }
            t.stop();
            assert!(heap_entries() <= 100, "{}", heap_entries());
            let shared = sched::current_shared().expect("in a runtime");
            assert!(
                shared.procs.iter().all(|p| p.timers.next() == u64::MAX),
                "no stopped timer counts as pending"
            );
        });
    }
}
