//! A one-value channel between a goroutine and a future (a handler's response to its
//! connection's hyper service): the future completes with the value, or with `None` when the
//! sender was dropped without sending.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

struct State<T> {
    value: Option<T>,
    closed: bool,
    waker: Option<Waker>,
}

/// The sending half.
pub(crate) struct Sender<T>(Arc<Mutex<State<T>>>);

/// The receiving half: a future.
pub(crate) struct Receiver<T>(Arc<Mutex<State<T>>>);

pub(crate) struct Oneshot;

impl Oneshot {
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new<T>() -> (Sender<T>, Receiver<T>) {
        let s = Arc::new(Mutex::new(State {
            value: None,
            closed: false,
            waker: None,
        }));
        (Sender(s.clone()), Receiver(s))
    }
}

impl<T> Sender<T> {
    pub(crate) fn send(self, v: T) {
        self.0.lock().value = Some(v);
        // Drop wakes.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let w = {
            let mut s = self.0.lock();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.0.lock();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
