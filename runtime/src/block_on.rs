//! `block_on`: a future run to completion on the calling goroutine, which parks (its thread
//! runs other goroutines) whenever the future is pending; on a plain thread, the thread
//! sleeps.
//!
//! # The wake-up protocol
//!
//! The future's waker is a [`Signal`]: under its lock, either a waiter (the parked goroutine
//! or sleeping thread) or a `notified` flag.
//!
//! ```text
//!  block_on                                   wake (any thread, any runtime, any time)
//!  loop { poll the future                     lock
//!         Ready -> return                       waiter present: take it, unlock, wake it
//!         Pending -> park; after the switch:    else: notified = true
//!           lock                              unlock
//!           notified? clear it, resume at once
//!           else store the waiter
//!           unlock }
//! ```
//!
//! A wake that comes while the future is being polled (or before the waiter is stored) sets
//! `notified`, and the waiter, about to sleep, sees it and polls again; a wake after the waiter
//! is stored takes and wakes it. Either way the future is polled again after every wake that
//! followed its last poll: no wake-up is lost. Spurious extra polls (a wake that raced a poll
//! that already saw the event) are allowed, as for any executor.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

use crate::sched::park::{block_current, Waiter};
use crate::sched::WaitReason;

thread_local! {
    /// A signal and its waker that no `block_on` on this thread uses now: the next one takes
    /// it instead of allocating (a `block_on` that parks may resume on another thread and
    /// leaves its signal there). A waker of an earlier `block_on` still held somewhere may
    /// fire into a later one: a spurious poll, which futures allow.
    static SPARE: std::cell::Cell<Option<(Arc<Signal>, Waker)>> = const { std::cell::Cell::new(None) };
}

fn take_signal() -> (Arc<Signal>, Waker) {
    if let Some(s) = SPARE.try_with(|c| c.take()).ok().flatten() {
        return s;
    }
    let signal = Arc::new(Signal {
        state: Mutex::new(State {
            notified: false,
            waiter: None,
        }),
    });
    let waker = Waker::from(signal.clone());
    (signal, waker)
}

fn put_signal(signal: Arc<Signal>, waker: Waker) {
    {
        let mut s = signal.state.lock();
        s.notified = false;
        s.waiter = None;
    }
    let _ = SPARE.try_with(|c| c.set(Some((signal, waker))));
}

/// The waker of one `block_on`.
struct Signal {
    state: Mutex<State>,
}

struct State {
    /// A wake came while nobody waited.
    notified: bool,
    /// Who waits for the next wake.
    waiter: Option<Waiter>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let w = {
            let mut s = self.state.lock();
            match s.waiter.take() {
                Some(w) => Some(w),
                None => {
                    s.notified = true;
                    None
                }
            }
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// Runs `future` to completion on the calling goroutine and returns its output: Rust's async
/// libraries (a database client, an HTTP client, anything generic over an executor) called
/// from blocking-style code.
///
/// The goroutine parks while the future is pending, so its thread runs other goroutines; the
/// future's waker readies it again, from wherever it fires: another goroutine, a plain thread,
/// gort's timers and sockets ([`time::Sleep`](crate::time::Sleep), the async side of
/// [`net::TcpStream`](crate::net::TcpStream)), or another runtime's threads (a tokio
/// runtime's I/O driver, say). On a plain thread, `block_on` blocks the thread instead.
///
/// The future runs on the calling goroutine's stack: it may block, park and take locks as any
/// goroutine code does (a future that blocks stalls only this goroutine). A wake-up costs
/// about what a channel wake-up does (a lock and a `ready`).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// gort::run(|| {
///     let ch: gort::Chan<u32> = gort::Chan::new(0);
///     let tx = ch.clone();
///     gort::go!(move || tx.send(7));
///     // An async block awaiting gort's timer, then a value from a channel.
///     let got = gort::block_on(async move {
///         gort::time::Sleep::new(Duration::from_millis(1)).await;
///         ch.recv()
///     });
///     assert_eq!(got, Some(7));
/// });
/// ```
///
/// A waker that fires on a plain thread:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, Mutex};
/// use std::task::{Context, Poll, Waker};
///
/// /// Completes once a thread sets the value.
/// struct Slot(Arc<Mutex<(Option<u32>, Option<Waker>)>>);
///
/// impl Future for Slot {
///     type Output = u32;
///     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
///         let mut s = self.0.lock().unwrap();
///         match s.0 {
///             Some(v) => Poll::Ready(v),
///             None => {
///                 s.1 = Some(cx.waker().clone());
///                 Poll::Pending
///             }
///         }
///     }
/// }
///
/// gort::run(|| {
///     let shared = Arc::new(Mutex::new((None, None)));
///     let s = shared.clone();
///     std::thread::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(5));
///         let w = {
///             let mut s = s.lock().unwrap();
///             s.0 = Some(42);
///             s.1.take()
///         };
///         w.map(Waker::wake);
///     });
///     assert_eq!(gort::block_on(Slot(shared)), 42);
/// });
/// ```
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let (signal, waker) = take_signal();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            put_signal(signal, waker);
            return v;
        }
        // Parks (or sleeps) unless a wake came since the poll began.
        let s = &signal;
        block_current(WaitReason::BlockOn, move |w| {
            let mut st = s.state.lock();
            if st.notified {
                st.notified = false;
                drop(st);
                w.wake(); // resume at once
            } else {
                st.waiter = Some(w);
            }
        });
        // A wake that arrives from here on sets `notified`: consumed by the next
        // `block_current` if the future stays pending (one extra poll at most).
    }
}
