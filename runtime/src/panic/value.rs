//! What `recover` returns: the [`Panic`] value, Go's run-time errors ([`RuntimeError`]), and
//! the text a crash report prints for a panic value (Go's `printpanicval`).

use std::any::Any;
use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Where a panic started: the Rust source location std reported for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicLocation {
    file: String,
    line: u32,
    column: u32,
}

impl PanicLocation {
    pub(crate) fn from_std(l: &std::panic::Location<'_>) -> PanicLocation {
        PanicLocation {
            file: l.file().to_string(),
            line: l.line(),
            column: l.column(),
        }
    }

    /// The source file.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, from 1.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, from 1.
    pub fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A run-time check that failed: the Rust counterparts of Go's `runtime.Error` panics.
///
/// Rust's own checks panic with Rust's texts; gort recognises the ones Go also has and
/// presents them with Go's text, so that a Go programmer's `recover` and crash reports read
/// as in Go. The original Rust message is kept ([`RuntimeError::rust_message`]).
///
/// | Rust check | Go text |
/// |---|---|
/// | index out of bounds | `runtime error: index out of range [i] with length n` |
/// | division or remainder by zero | `runtime error: integer divide by zero` |
/// | `unwrap()` on `None` | `runtime error: invalid memory address or nil pointer dereference` |
///
/// `Option::unwrap` on `None` is the nearest thing Rust has to dereferencing a nil pointer;
/// `expect(msg)` keeps its own message and is not a run-time error.
///
/// # Example
///
/// ```
/// gort::run(gort::frame!(|| {
///     let v = vec![1, 2, 3];
///     let i = v.len() + 2;
///     let r = gort::frame! {
///         defer!(|| {
///             let p = gort::recover().expect("panicking");
///             let e = p.runtime_error().expect("a run-time error");
///             assert_eq!(e.to_string(), "runtime error: index out of range [5] with length 3");
///         });
///         v[i]
///     };
///     assert_eq!(r, 0); // the zero value, as in Go after a recover
/// }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeError {
    kind: RuntimeErrorKind,
    rust: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RuntimeErrorKind {
    IndexOutOfRange {
        index: u128,
        len: u128,
    },
    DivideByZero,
    NilDereference,
    /// Go's `plainError`: printed without the `runtime error: ` prefix (channel misuse).
    Plain(&'static str),
}

impl RuntimeError {
    /// Recognises a Rust run-time check panic by its message.
    pub(crate) fn classify(msg: &str) -> Option<RuntimeError> {
        let kind = if let Some(rest) = msg.strip_prefix("index out of bounds: the len is ") {
            let (len, index) = rest.split_once(" but the index is ")?;
            RuntimeErrorKind::IndexOutOfRange {
                index: index.trim().parse().ok()?,
                len: len.trim().parse().ok()?,
            }
        } else if msg == "attempt to divide by zero"
            || msg == "attempt to calculate the remainder with a divisor of zero"
        {
            RuntimeErrorKind::DivideByZero
        } else if msg == "called `Option::unwrap()` on a `None` value" {
            RuntimeErrorKind::NilDereference
        } else {
            return None;
        };
        Some(RuntimeError {
            kind,
            rust: msg.to_string(),
        })
    }

    /// A run-time error Go prints without the `runtime error: ` prefix (`send on closed
    /// channel`, `close of closed channel`, `close of nil channel`).
    pub(crate) fn plain(what: &'static str) -> RuntimeError {
        RuntimeError {
            kind: RuntimeErrorKind::Plain(what),
            rust: what.to_string(),
        }
    }

    /// The message Rust's check panicked with (for gort's own errors, the message).
    pub fn rust_message(&self) -> &str {
        &self.rust
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RuntimeErrorKind::IndexOutOfRange { index, len } => write!(
                f,
                "runtime error: index out of range [{index}] with length {len}"
            ),
            RuntimeErrorKind::DivideByZero => f.write_str("runtime error: integer divide by zero"),
            RuntimeErrorKind::NilDereference => {
                f.write_str("runtime error: invalid memory address or nil pointer dereference")
            }
            RuntimeErrorKind::Plain(what) => f.write_str(what),
        }
    }
}

impl Error for RuntimeError {}

/// A panic taken by [`recover`](crate::recover): the value it was raised with, where it
/// started, and Go's view of it (an error, a run-time error, a printable value).
///
/// # Example
///
/// ```
/// #[gort::func]
/// fn safe_div(a: i32, b: i32) -> Result<i32, String> {
///     defer!(|r| {
///         if let Some(p) = gort::recover() {
///             r.set(Err(p.to_string()));
///         }
///     });
///     Ok(a / b)
/// }
///
/// gort::run(|| {
///     assert_eq!(safe_div(7, 2), Ok(3));
///     assert_eq!(safe_div(1, 0), Err("runtime error: integer divide by zero".to_string()));
/// });
/// ```
pub struct Panic {
    payload: Box<dyn Any + Send>,
    location: Option<PanicLocation>,
    runtime: Option<Box<RuntimeError>>,
}

impl Panic {
    pub(crate) fn new(payload: Box<dyn Any + Send>, location: Option<PanicLocation>) -> Panic {
        let runtime = match payload.downcast_ref::<RuntimeError>() {
            Some(e) => Some(Box::new(e.clone())),
            None => str_payload(&*payload)
                .and_then(RuntimeError::classify)
                .map(Box::new),
        };
        Panic {
            payload,
            location,
            runtime,
        }
    }

    /// The value, if it is a `T` (`panic!("text")` raises a `&'static str` or a `String`;
    /// [`std::panic::panic_any`] raises any type).
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.payload.downcast_ref::<T>()
    }

    /// Whether the value is a `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.payload.is::<T>()
    }

    /// The value as a `T`, or the panic back.
    pub fn downcast<T: Any>(self) -> Result<Box<T>, Panic> {
        let Panic {
            payload,
            location,
            runtime,
        } = self;
        payload.downcast::<T>().map_err(|payload| Panic {
            payload,
            location,
            runtime,
        })
    }

    /// The value as std hands it to `catch_unwind`.
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        self.payload
    }

    /// The value as a `&dyn Any`.
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    /// The text of a string value (`panic!("...")`), if it is one.
    pub fn message(&self) -> Option<&str> {
        str_payload(&*self.payload)
    }

    /// Go's `runtime.Error`: set when the panic is one of Rust's run-time checks that Go also
    /// makes (see [`RuntimeError`]).
    pub fn runtime_error(&self) -> Option<&RuntimeError> {
        self.runtime.as_deref()
    }

    /// The value as an error: a run-time error, or a boxed error raised with
    /// [`panic_error`](crate::panic_error) or `panic_any(Box<dyn Error + Send + Sync>)`.
    pub fn as_error(&self) -> Option<&(dyn Error + 'static)> {
        if let Some(e) = &self.runtime {
            return Some(&**e);
        }
        error_payload(&*self.payload)
    }

    /// Where the panic started, when std reported it (a `panic!` or run-time check inside a
    /// goroutine; not a value re-raised with [`Panic::repanic`]).
    pub fn location(&self) -> Option<&PanicLocation> {
        self.location.as_ref()
    }

    /// Panics again with the same value: Go's `panic(r)` after `r := recover()`. This is a new
    /// panic, as in Go.
    pub fn repanic(self) -> ! {
        super::frame::fresh_panic(self.payload, self.location)
    }
}

impl fmt::Display for Panic {
    /// Go's `printpanicval`: strings as they are, errors by their message (run-time errors in
    /// Go's words), numbers, `bool` and `char` as Rust prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.runtime {
            return fmt::Display::fmt(&**e, f);
        }
        f.write_str(&payload_text(&*self.payload))
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic")
            .field("value", &payload_text(&*self.payload))
            .field("location", &self.location)
            .finish()
    }
}

fn str_payload(p: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        Some(s)
    } else if let Some(s) = p.downcast_ref::<String>() {
        Some(s)
    } else if let Some(s) = p.downcast_ref::<Cow<'static, str>>() {
        Some(s)
    } else {
        None
    }
}

fn error_payload(p: &(dyn Any + Send)) -> Option<&(dyn Error + 'static)> {
    if let Some(e) = p.downcast_ref::<Box<dyn Error + Send + Sync>>() {
        Some(&**e)
    } else if let Some(e) = p.downcast_ref::<Box<dyn Error + Send>>() {
        Some(&**e)
    } else if let Some(e) = p.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
        Some(&**e)
    } else if let Some(e) = p.downcast_ref::<std::io::Error>() {
        Some(e)
    } else if let Some(e) = p.downcast_ref::<RuntimeError>() {
        Some(e)
    } else {
        None
    }
}

macro_rules! display_numbers {
    ($p:expr, $($t:ty),*) => {
        $( if let Some(v) = $p.downcast_ref::<$t>() { return Cow::Owned(v.to_string()); } )*
    };
}

/// The text a crash report prints for a panic value (Go's `printpanicval`); Rust's run-time
/// checks read in Go's words (see [`RuntimeError`]).
pub(crate) fn payload_text(p: &(dyn Any + Send)) -> Cow<'static, str> {
    if let Some(s) = str_payload(p) {
        return match RuntimeError::classify(s) {
            Some(e) => Cow::Owned(e.to_string()),
            None => match p.downcast_ref::<&'static str>() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(s.to_string()),
            },
        };
    }
    if let Some(e) = error_payload(p) {
        return Cow::Owned(e.to_string());
    }
    display_numbers!(
        p, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, bool, char
    );
    Cow::Borrowed("(panic value of a type gort cannot print; recover it and downcast)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_checks_read_as_go_runtime_errors() {
        let e =
            RuntimeError::classify("index out of bounds: the len is 3 but the index is 5").unwrap();
        assert_eq!(
            e.to_string(),
            "runtime error: index out of range [5] with length 3"
        );
        assert_eq!(
            RuntimeError::classify("attempt to divide by zero")
                .unwrap()
                .to_string(),
            "runtime error: integer divide by zero"
        );
        assert!(RuntimeError::classify("boom").is_none());
    }

    #[test]
    fn values_print_as_go_prints_them() {
        let cases: Vec<(Box<dyn Any + Send>, &str)> = vec![
            (Box::new("str"), "str"),
            (Box::new(String::from("owned")), "owned"),
            (Box::new(42i32), "42"),
            (Box::new(2.5f64), "2.5"),
            (
                Box::new(Box::<dyn Error + Send + Sync>::from("failed")),
                "failed",
            ),
            (
                Box::new("attempt to divide by zero"),
                "runtime error: integer divide by zero",
            ),
        ];
        for (p, want) in cases {
            assert_eq!(payload_text(&*p), want);
        }
    }
}
