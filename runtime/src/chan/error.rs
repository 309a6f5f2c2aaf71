//! The errors of the non-blocking and bounded channel operations: [`TrySendError`],
//! [`TryRecvError`], [`SendTimeoutError`], [`RecvTimeoutError`].

use std::fmt;

/// Why [`Chan::try_send`] did not send; the value comes back.
///
/// ```
/// use gort::TrySendError;
/// let ch = gort::Chan::new(1);
/// ch.send(1);
/// assert_eq!(ch.try_send(2), Err(TrySendError::Full(2))); // the buffer is full
/// ch.close();
/// assert_eq!(ch.try_send(3), Err(TrySendError::Closed(3))); // the value comes back
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full (or, unbuffered, no receiver is waiting).
    Full(T),
    /// The channel is closed.
    Closed(T),
}

/// Why [`Chan::try_recv`] got no value.
///
/// ```
/// use gort::TryRecvError;
/// let ch = gort::Chan::new(1);
/// assert_eq!(ch.try_recv(), Err(TryRecvError::Empty));
/// ch.send("last");
/// ch.close();
/// assert_eq!(ch.try_recv(), Ok("last")); // buffered values outlive close
/// assert_eq!(ch.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// Closed and drained.
    Closed,
}

/// Why [`Chan::send_timeout`] did not send; the value comes back.
///
/// ```
/// use std::time::Duration;
/// use gort::SendTimeoutError;
/// gort::run(|| {
///     let ch = gort::Chan::new(0); // unbuffered, and nobody receives
///     let r = ch.send_timeout(String::from("late"), Duration::from_millis(5));
///     assert_eq!(r, Err(SendTimeoutError::Timeout(String::from("late"))));
/// });
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// No receiver took it in time.
    Timeout(T),
}

/// Why [`Chan::recv_timeout`] got no value.
///
/// ```
/// use std::time::Duration;
/// use gort::RecvTimeoutError;
/// gort::run(|| {
///     let ch: gort::Chan<u8> = gort::Chan::new(0);
///     assert_eq!(ch.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
///     ch.close();
///     assert_eq!(ch.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Closed));
/// });
/// ```
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    Timeout,
    /// Closed and drained.
    Closed,
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Timeout(..)")
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("send would block"),
            TrySendError::Closed(_) => f.write_str("send on closed channel"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receive would block"),
            TryRecvError::Closed => f.write_str("receive from closed channel"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("send timed out")
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("receive timed out"),
            RecvTimeoutError::Closed => f.write_str("receive from closed channel"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}
impl std::error::Error for TryRecvError {}
impl<T> std::error::Error for SendTimeoutError<T> {}
impl std::error::Error for RecvTimeoutError {}
