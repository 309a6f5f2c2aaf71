//! The dynamic select ([`Select`]): a select over a set of send and receive cases known only at
//! run time (Go's `reflect.Select`, crossbeam's `Select`).
//!
//! It is `select!` without the macro: each case is the same `RecvCase` / `SendCase` value the
//! macro builds, boxed, and [`Select::select`] calls the same `select` function (`select.rs`),
//! so fairness (a uniformly random ready case), lock order, nil channels, `send on closed
//! channel` and blocking forever on no usable case are the macro's, not a second
//! implementation's.
//!
//! The winning case's value is taken back with its type through [`Selected::recv`]: the caller
//! names the channel, and the case is cast back to `RecvCase<T>` only when it is a receive on
//! that very channel (same address, so same `T`: a channel's state is one allocation made for
//! one element type, and the case borrows the channel, so the address cannot be reused while
//! the `Select` lives).

use std::fmt;

use super::select::{case_addr, select, RecvCase, SelectCase, SendCase};
use super::Chan;

/// What a case does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Recv,
    Send,
}

/// One case: the type-erased case value (which knows its channel's address) and its kind.
struct Case<'a> {
    op: Box<dyn SelectCase + 'a>,
    kind: Kind,
}

/// A select over cases added at run time: Go's `reflect.Select`.
///
/// Add receive cases with [`recv`](Select::recv) and send cases with [`send`](Select::send);
/// each returns the case's index. [`select`](Select::select) blocks until one case can proceed
/// and completes exactly that one; [`try_select`](Select::try_select) is the select with a
/// `default` case. When several cases are ready, one is chosen uniformly at random, as in
/// Go; a nil channel ([`Chan::nil`]) is never chosen; a send on a closed channel panics
/// (`send on closed channel`); a select with no usable case and no default blocks forever.
///
/// A `Select` is used once: `select` consumes it (a send case's value is moved into the
/// channel or dropped with the select). The values of send cases that did not win are
/// dropped, as Go's select discards the values it evaluated for them.
///
/// # Example
///
/// Fan-in from a number of workers known only at run time:
///
/// ```
/// use gort::{go, Chan, Select};
///
/// gort::run(|| {
///     let inputs: Vec<Chan<usize>> = (0..5).map(|_| Chan::new(0)).collect();
///     for (i, ch) in inputs.iter().enumerate() {
///         let ch = ch.clone();
///         go!(move || {
///             ch.send(i * 10);
///             ch.close();
///         });
///     }
///     let mut open = inputs;
///     let mut sum = 0;
///     while !open.is_empty() {
///         let mut sel = Select::new();
///         for ch in &open {
///             sel.recv(ch);
///         }
///         let op = sel.select();
///         let i = op.index();
///         match op.recv(&open[i]) {
///             Some(v) => sum += v,
///             None => {
///                 open.swap_remove(i); // closed: stop selecting on it
///             }
///         }
///     }
///     assert_eq!(sum, 100);
/// });
/// ```
pub struct Select<'a> {
    cases: Vec<Case<'a>>,
}

impl<'a> Select<'a> {
    /// A select with no cases.
    ///
    /// # Example
    ///
    /// ```
    /// let sel = gort::Select::new();
    /// assert!(sel.is_empty());
    /// ```
    pub fn new() -> Select<'a> {
        Select { cases: Vec::new() }
    }

    /// Adds a receive from `ch` and returns the case's index. When it wins,
    /// [`Selected::recv`] gives the value, or `None` if the channel was closed.
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// gort::run(|| {
    ///     let a: Chan<&str> = Chan::new(1);
    ///     let b: Chan<&str> = Chan::new(1);
    ///     b.send("b");
    ///     let mut sel = Select::new();
    ///     assert_eq!(sel.recv(&a), 0);
    ///     assert_eq!(sel.recv(&b), 1);
    ///     let op = sel.select();
    ///     assert_eq!(op.index(), 1);
    ///     assert_eq!(op.recv(&b), Some("b"));
    /// });
    /// ```
    pub fn recv<T: Send + 'a>(&mut self, ch: &'a Chan<T>) -> usize {
        self.push(Box::new(RecvCase::new(Some(ch))), Kind::Recv)
    }

    /// Adds a send of `v` on `ch` and returns the case's index. `v` is moved into the channel
    /// only if this case wins.
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// gort::run(|| {
    ///     let out: Chan<i32> = Chan::new(1);
    ///     let mut sel = Select::new();
    ///     let i = sel.send(&out, 7);
    ///     assert_eq!(sel.select().index(), i);
    ///     assert_eq!(out.recv(), Some(7));
    /// });
    /// ```
    pub fn send<T: Send + 'a>(&mut self, ch: &'a Chan<T>, v: T) -> usize {
        self.push(Box::new(SendCase::new(Some(ch), v)), Kind::Send)
    }

    fn push(&mut self, op: Box<dyn SelectCase + 'a>, kind: Kind) -> usize {
        self.cases.push(Case { op, kind });
        self.cases.len() - 1
    }

    /// The number of cases added.
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// let ch: Chan<u8> = Chan::new(0);
    /// let mut sel = Select::new();
    /// sel.recv(&ch);
    /// assert_eq!(sel.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether no case was added (a `select` would block forever).
    ///
    /// # Example
    ///
    /// ```
    /// assert!(gort::Select::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Blocks until one case can proceed, completes it, and returns it. Several ready: one
    /// chosen uniformly at random. Go's `select` without `default`.
    ///
    /// # Panics
    ///
    /// `send on closed channel` if the case chosen is a send on a closed channel.
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{go, Chan, Select};
    ///
    /// gort::run(|| {
    ///     let ch: Chan<String> = Chan::new(0);
    ///     let tx = ch.clone();
    ///     go!(move || tx.send("hello".to_string()));
    ///     let mut sel = Select::new();
    ///     sel.recv(&ch);
    ///     assert_eq!(sel.select().recv(&ch).as_deref(), Some("hello"));
    /// });
    /// ```
    #[track_caller]
    pub fn select(self) -> Selected<'a> {
        self.run(false)
            .unwrap_or_else(|| crate::panic::throw("select: no case completed without default"))
    }

    /// Completes a case that can proceed now, or returns `None` without blocking. Go's
    /// `select` with `default`.
    ///
    /// # Panics
    ///
    /// `send on closed channel` if the case chosen is a send on a closed channel.
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// gort::run(|| {
    ///     let ch: Chan<i32> = Chan::new(0);
    ///     let mut sel = Select::new();
    ///     sel.recv(&ch);
    ///     assert!(sel.try_select().is_none()); // nobody is sending
    /// });
    /// ```
    #[track_caller]
    pub fn try_select(self) -> Option<Selected<'a>> {
        self.run(true)
    }

    #[track_caller]
    fn run(mut self, has_default: bool) -> Option<Selected<'a>> {
        let won = {
            let mut ops: Vec<&mut dyn SelectCase> =
                self.cases.iter_mut().map(|c| &mut *c.op as _).collect();
            select(&mut ops, has_default)
        };
        if won == self.cases.len() {
            return None;
        }
        // Keep only the winner; the other cases (and their unsent values) drop here.
        let case = self.cases.swap_remove(won);
        Some(Selected { index: won, case })
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("cases", &self.cases.len())
            .finish()
    }
}

/// The case a [`Select`] completed.
///
/// # Example
///
/// ```
/// use gort::{Chan, Select};
///
/// gort::run(|| {
///     let ch: Chan<u32> = Chan::new(1);
///     ch.send(5);
///     let mut sel = Select::new();
///     sel.recv(&ch);
///     let op = sel.select();
///     assert_eq!(op.index(), 0);
///     assert!(op.is_recv());
///     assert_eq!(op.recv(&ch), Some(5));
/// });
/// ```
pub struct Selected<'a> {
    index: usize,
    case: Case<'a>,
}

impl<'a> Selected<'a> {
    /// The index of the completed case (as returned by [`Select::recv`] / [`Select::send`]).
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// gort::run(|| {
    ///     let ch: Chan<()> = Chan::new(1);
    ///     let mut sel = Select::new();
    ///     let i = sel.send(&ch, ());
    ///     assert_eq!(sel.select().index(), i);
    /// });
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the completed case is a receive.
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// gort::run(|| {
    ///     let ch: Chan<()> = Chan::new(1);
    ///     let mut sel = Select::new();
    ///     sel.send(&ch, ());
    ///     assert!(!sel.select().is_recv());
    /// });
    /// ```
    pub fn is_recv(&self) -> bool {
        self.case.kind == Kind::Recv
    }

    /// The value the completed receive took from `ch`: `None` if `ch` was closed (Go's
    /// `v, ok := <-ch` with `ok == false`).
    ///
    /// # Panics
    ///
    /// If the completed case is not a receive from `ch` (a caller's mistake: compare
    /// [`index`](Selected::index) first).
    ///
    /// # Example
    ///
    /// ```
    /// use gort::{Chan, Select};
    ///
    /// gort::run(|| {
    ///     let ch: Chan<i32> = Chan::new(0);
    ///     ch.close();
    ///     let mut sel = Select::new();
    ///     sel.recv(&ch);
    ///     assert_eq!(sel.select().recv(&ch), None); // closed
    /// });
    /// ```
    #[track_caller]
    pub fn recv<T: Send + 'a>(self, ch: &Chan<T>) -> Option<T> {
        let addr = case_addr(ch.raw());
        if self.case.kind != Kind::Recv || addr == 0 || self.case.op.addr() != addr {
            panic!(
                "gort::Selected::recv: case {} is not a receive from this channel",
                self.index
            );
        }
        let raw = Box::into_raw(self.case.op) as *mut RecvCase<'a, T>;
        // SAFETY: the case is a receive (its kind) whose channel is `ch`'s: `Select::recv`
        // boxed a `RecvCase<'a, U>` borrowing a `Chan<U>` at this address, which is still
        // alive (borrowed for 'a), and one channel state is one allocation of one element
        // type, so `U` is `T`. The box came from `Box::new` of that type.
        let case = unsafe { Box::from_raw(raw) };
        case.into_value()
    }
}

impl fmt::Debug for Selected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selected")
            .field("index", &self.index)
            .field("kind", &self.case.kind)
            .finish()
    }
}
