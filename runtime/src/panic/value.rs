//! What `recover` returns: the [`Panic`] value, Go's run-time errors ([`RuntimeError`]), and
//! the text a crash report prints for a panic value (Go's `printpanicval`).

use std::any::Any;
use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Where a panic started: the Rust source location std reported for it (from
/// [`Panic::location`]); its `Display` is `file:line:column`.
///
/// ```
/// gort::run(gort::frame!(|| {
///     defer!(|| {
///         let at = gort::recover().unwrap().location().unwrap().clone();
///         assert_eq!(at.to_string(), format!("{}:{}:{}", file!(), line!() + 2, at.column()));
///     });
///     panic!("here");
/// }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let at = gort::recover().unwrap().location().unwrap().clone();
    ///         assert_eq!(at.file(), file!());
    ///     });
    ///     panic!("here");
    /// }));
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, from 1.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let at = gort::recover().unwrap().location().unwrap().clone();
    ///         assert_eq!(at.line(), line!() + 2);
    ///     });
    ///     panic!("here");
    /// }));
    /// ```
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, from 1.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let at = gort::recover().unwrap().location().unwrap().clone();
    ///         assert_eq!(at.column(), 5);
    ///     });
    ///     panic!("here"); // column 5, after four spaces
    /// }));
    /// ```
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
/// | `&s[a..b]` with `b > len` | `runtime error: slice bounds out of range [:b] with capacity len` |
/// | `&s[a..b]` with `a > b` | `runtime error: slice bounds out of range [a:b]` |
/// | `&s[a..]` with `a > len` | `runtime error: slice bounds out of range [a:len]` |
/// | division or remainder by zero | `runtime error: integer divide by zero` |
/// | `unwrap()` on `None` | `runtime error: invalid memory address or nil pointer dereference` |
/// | `capacity overflow` (a `Vec` too large to exist) | `runtime error: makeslice: len out of range` |
///
/// `Option::unwrap` on `None` is the nearest thing Rust has to dereferencing a nil pointer;
/// `expect(msg)` keeps its own message and is not a run-time error. A Rust slice has no
/// capacity apart from its length, so the end-of-range case names the length as Go's
/// capacity. Out-of-range `str` slicing keeps Rust's text: its message does not say which
/// bound failed.
///
/// Rust's wording is not a stable interface: gort recognises these messages by their text,
/// and its tests raise each check for real, so a compiler that words them differently fails
/// the tests rather than silently changing what `recover` reports.
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
    /// `s[:end]` past the end (Go's `boundsSliceAcap`).
    SliceEnd {
        end: u128,
        cap: u128,
    },
    /// `s[start:end]` with `start > end` (Go's `boundsSliceB`).
    SliceOrder {
        start: u128,
        end: u128,
    },
    DivideByZero,
    NilDereference,
    /// Go's `makeslice: len out of range`.
    MakeSliceLen,
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
        } else if let Some(rest) = msg.strip_prefix("range end index ") {
            let (end, len) = rest.split_once(" out of range for slice of length ")?;
            RuntimeErrorKind::SliceEnd {
                end: end.trim().parse().ok()?,
                cap: len.trim().parse().ok()?,
            }
        } else if let Some(rest) = msg.strip_prefix("range start index ") {
            // `&s[a..]` with `a > len`: Go checks `a <= len` as the pair `[a:len]`.
            let (start, len) = rest.split_once(" out of range for slice of length ")?;
            RuntimeErrorKind::SliceOrder {
                start: start.trim().parse().ok()?,
                end: len.trim().parse().ok()?,
            }
        } else if let Some(rest) = msg.strip_prefix("slice index starts at ") {
            let (start, end) = rest.split_once(" but ends at ")?;
            RuntimeErrorKind::SliceOrder {
                start: start.trim().parse().ok()?,
                end: end.trim().parse().ok()?,
            }
        } else if msg == "capacity overflow" {
            RuntimeErrorKind::MakeSliceLen
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
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let p = gort::recover().expect("panicking");
    ///         let e = p.runtime_error().expect("a run-time error");
    ///         assert_eq!(e.to_string(), "runtime error: integer divide by zero"); // Go's text
    ///         assert_eq!(e.rust_message(), "attempt to divide by zero"); // Rust's
    ///     });
    ///     let zero = std::hint::black_box(0);
    ///     let _ = 1 / zero;
    /// }));
    /// ```
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
            RuntimeErrorKind::SliceEnd { end, cap } => write!(
                f,
                "runtime error: slice bounds out of range [:{end}] with capacity {cap}"
            ),
            RuntimeErrorKind::SliceOrder { start, end } => {
                write!(
                    f,
                    "runtime error: slice bounds out of range [{start}:{end}]"
                )
            }
            RuntimeErrorKind::MakeSliceLen => {
                f.write_str("runtime error: makeslice: len out of range")
            }
            RuntimeErrorKind::DivideByZero => f.write_str("runtime error: integer divide by zero"),
            RuntimeErrorKind::NilDereference => {
                f.write_str("runtime error: invalid memory address or nil pointer dereference")
            }
            RuntimeErrorKind::Plain(what) => f.write_str(what),
        }
    }
}

impl Error for RuntimeError {}

/// Prints a value raised with [`crate::panic`] (its `Display`).
pub(crate) type PrintFn = fn(&(dyn Any + Send), &mut fmt::Formatter<'_>) -> fmt::Result;

/// The payload [`crate::panic`] raises: the value and how to print it. `Panic` unwraps it, so
/// `downcast_ref::<T>()` sees the value itself.
pub(crate) struct Printable {
    pub(crate) value: Box<dyn Any + Send>,
    pub(crate) print: PrintFn,
}

impl Printable {
    pub(crate) fn new<T: fmt::Display + Send + 'static>(v: T) -> Printable {
        fn print<T: fmt::Display + 'static>(
            v: &(dyn Any + Send),
            f: &mut fmt::Formatter<'_>,
        ) -> fmt::Result {
            match v.downcast_ref::<T>() {
                Some(v) => fmt::Display::fmt(v, f),
                None => f.write_str("(value of another type)"),
            }
        }
        Printable {
            value: Box::new(v),
            print: print::<T>,
        }
    }
}

/// Formats a value with a `PrintFn` through `Display`.
struct WithPrint<'a>(&'a (dyn Any + Send), PrintFn);

impl fmt::Display for WithPrint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.1)(self.0, f)
    }
}

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
    /// Set for a value raised with `gort::panic` (printed by its `Display`).
    print: Option<PrintFn>,
    location: Option<PanicLocation>,
    runtime: Option<Box<RuntimeError>>,
}

impl Panic {
    /// The value of an unwind as `recover` hands it out: a `gort::panic` value is unwrapped,
    /// and a recovered `Panic` raised again with `panic_any` is the same value again (Go's
    /// `panic(recover())`), started at `location`.
    pub(crate) fn new(payload: Box<dyn Any + Send>, location: Option<PanicLocation>) -> Panic {
        let payload = match payload.downcast::<Panic>() {
            Ok(inner) => {
                let Panic {
                    payload,
                    print,
                    location: old,
                    runtime,
                } = *inner;
                return Panic {
                    payload,
                    print,
                    location: location.or(old),
                    runtime,
                };
            }
            Err(p) => p,
        };
        let (payload, print) = match payload.downcast::<Printable>() {
            Ok(p) => (p.value, Some(p.print)),
            Err(p) => (p, None),
        };
        let runtime = match payload.downcast_ref::<RuntimeError>() {
            Some(e) => Some(Box::new(e.clone())),
            None => str_payload(&*payload)
                .and_then(RuntimeError::classify)
                .map(Box::new),
        };
        Panic {
            payload,
            print,
            location,
            runtime,
        }
    }

    /// The value, if it is a `T` (`panic!("text")` raises a `&'static str` or a `String`;
    /// [`std::panic::panic_any`] and [`gort::panic`](crate::panic()) raise any type).
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let p = gort::recover().expect("panicking");
    ///         assert_eq!(p.downcast_ref::<u32>(), Some(&7));
    ///         assert!(p.downcast_ref::<i32>().is_none());
    ///     });
    ///     std::panic::panic_any(7u32);
    /// }));
    /// ```
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.payload.downcast_ref::<T>()
    }

    /// Whether the value is a `T`.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| assert!(gort::recover().expect("panicking").is::<&str>()));
    ///     panic!("text");
    /// }));
    /// ```
    pub fn is<T: Any>(&self) -> bool {
        self.payload.is::<T>()
    }

    /// The value as a `T`, or the panic back.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let p = gort::recover().expect("panicking");
    ///         let p = p.downcast::<i64>().expect_err("not an i64");
    ///         assert_eq!(*p.downcast::<String>().expect("a String"), "owned");
    ///     });
    ///     panic!("{}", String::from("owned"));
    /// }));
    /// ```
    pub fn downcast<T: Any>(self) -> Result<Box<T>, Panic> {
        let Panic {
            payload,
            print,
            location,
            runtime,
        } = self;
        payload.downcast::<T>().map_err(|payload| Panic {
            payload,
            print,
            location,
            runtime,
        })
    }

    /// The value as std hands it to `catch_unwind` (for a `gort::panic` value: the value
    /// itself, without the way to print it).
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let v = gort::recover().expect("panicking").into_payload();
    ///         assert_eq!(v.downcast_ref::<&str>(), Some(&"x"));
    ///     });
    ///     panic!("x");
    /// }));
    /// ```
    pub fn into_payload(self) -> Box<dyn Any + Send> {
        self.payload
    }

    /// The value as a `&dyn Any`.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| assert!(gort::recover().expect("panicking").payload().is::<char>()));
    ///     std::panic::panic_any('c');
    /// }));
    /// ```
    pub fn payload(&self) -> &(dyn Any + Send) {
        &*self.payload
    }

    /// The text of a string value (`panic!("...")`), if it is one.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| assert_eq!(gort::recover().unwrap().message(), Some("at 3")));
    ///     panic!("at {}", 3);
    /// }));
    /// ```
    pub fn message(&self) -> Option<&str> {
        str_payload(&*self.payload)
    }

    /// Go's `runtime.Error`: set when the panic is one of Rust's run-time checks that Go also
    /// makes (see [`RuntimeError`]), or one of gort's own (channel misuse).
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let p = gort::recover().expect("panicking");
    ///         let e = p.runtime_error().expect("a run-time error");
    ///         assert_eq!(e.to_string(), "runtime error: slice bounds out of range [3:1]");
    ///     });
    ///     let v = vec![0u8; 4];
    ///     let (a, b) = (3, std::hint::black_box(1));
    ///     let _ = &v[a..b];
    /// }));
    /// ```
    pub fn runtime_error(&self) -> Option<&RuntimeError> {
        self.runtime.as_deref()
    }

    /// The value as an error: a run-time error, or a boxed error raised with
    /// [`panic_error`](crate::panic_error) or `panic_any(Box<dyn Error + Send + Sync>)`.
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let p = gort::recover().expect("panicking");
    ///         assert_eq!(p.as_error().expect("an error").to_string(), "disk full");
    ///     });
    ///     gort::panic_error(std::io::Error::other("disk full"));
    /// }));
    /// ```
    pub fn as_error(&self) -> Option<&(dyn Error + 'static)> {
        if let Some(e) = &self.runtime {
            return Some(&**e);
        }
        error_payload(&*self.payload)
    }

    /// Where the panic started, when std reported it (a `panic!`, a run-time check, a
    /// `gort::panic`, or [`Panic::repanic`]'s caller).
    ///
    /// ```
    /// gort::run(gort::frame!(|| {
    ///     defer!(|| {
    ///         let p = gort::recover().expect("panicking");
    ///         assert_eq!(p.location().expect("std reported it").line(), line!() + 2);
    ///     });
    ///     panic!("here");
    /// }));
    /// ```
    pub fn location(&self) -> Option<&PanicLocation> {
        self.location.as_ref()
    }

    /// Panics again with the same value: Go's `panic(r)` after `r := recover()`. This is a new
    /// panic, as in Go: the report shows it started here, with a backtrace of this call when
    /// `RUST_BACKTRACE` asks for one.
    ///
    /// ```
    /// #[gort::func]
    /// fn inner() {
    ///     defer!(|| {
    ///         if let Some(p) = gort::recover() {
    ///             if p.message() != Some("mine") {
    ///                 p.repanic(); // not handled here: pass it on
    ///             }
    ///         }
    ///     });
    ///     panic!("deep");
    /// }
    ///
    /// #[gort::func]
    /// fn outer() -> String {
    ///     defer!(|r| r.set(gort::recover().expect("passed on").to_string()));
    ///     inner();
    ///     String::new()
    /// }
    /// assert_eq!(gort::run(outer), "deep");
    /// ```
    #[track_caller]
    pub fn repanic(self) -> ! {
        super::chain::fresh_panic(self.into_raw(), std::panic::Location::caller())
    }

    /// The value as an unwind payload again (re-wrapping a `gort::panic` value).
    pub(crate) fn into_raw(self) -> Box<dyn Any + Send> {
        match self.print {
            Some(print) => Box::new(Printable {
                value: self.payload,
                print,
            }),
            None => self.payload,
        }
    }

    /// The text a crash report prints for this value (Go's `printpanicval`).
    pub(crate) fn report_text(&self) -> Cow<'static, str> {
        if let Some(e) = &self.runtime {
            return Cow::Owned(e.to_string());
        }
        if let Some(print) = self.print {
            return Cow::Owned(WithPrint(&*self.payload, print).to_string());
        }
        payload_text(&*self.payload, Style::Report)
    }
}

impl fmt::Display for Panic {
    /// Strings as they are, errors by their message (run-time errors in Go's words), values
    /// raised with `gort::panic` by their `Display`, numbers, `bool` and `char` as Rust prints
    /// them (a crash report prints floats as Go does instead).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.runtime {
            return fmt::Display::fmt(&**e, f);
        }
        if let Some(print) = self.print {
            return print(&*self.payload, f);
        }
        f.write_str(&payload_text(&*self.payload, Style::Display))
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic")
            .field("value", &self.to_string())
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

/// How a value is printed: as `Panic`'s `Display` does (Rust's formatting), or as Go's crash
/// report does (`printpanicval`: floats in Go's `print` format).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Display,
    Report,
}

/// Go's `printfloat` (runtime/print.go), digit for digit: `+1.500000e+000`, `NaN`, `+Inf`.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    const N: usize = 7;
    let mut buf = [0u8; N + 7];
    buf[0] = b'+';
    let mut e: i32 = 0;
    let mut v = v;
    if v == 0.0 {
        if v.is_sign_negative() {
            buf[0] = b'-';
        }
    } else {
        if v < 0.0 {
            v = -v;
            buf[0] = b'-';
        }
        while v >= 10.0 {
            e += 1;
            v /= 10.0;
        }
        while v < 1.0 {
            e -= 1;
            v *= 10.0;
        }
        let mut h = 5.0;
        for _ in 0..N {
            h /= 10.0;
        }
        v += h;
        if v >= 10.0 {
            e += 1;
            v /= 10.0;
        }
    }
    for i in 0..N {
        let d = v as i64;
        buf[i + 2] = b'0' + d as u8;
        v -= d as f64;
        v *= 10.0;
    }
    buf[1] = buf[2];
    buf[2] = b'.';
    buf[N + 2] = b'e';
    buf[N + 3] = b'+';
    if e < 0 {
        e = -e;
        buf[N + 3] = b'-';
    }
    buf[N + 4] = b'0' + (e / 100) as u8;
    buf[N + 5] = b'0' + (e / 10 % 10) as u8;
    buf[N + 6] = b'0' + (e % 10) as u8;
    String::from_utf8_lossy(&buf).into_owned()
}

macro_rules! display_numbers {
    ($p:expr, $($t:ty),*) => {
        $( if let Some(v) = $p.downcast_ref::<$t>() { return Cow::Owned(v.to_string()); } )*
    };
}

/// The text of a panic value: Go's `printpanicval` for a crash report (`Style::Report`), or
/// what `Panic`'s `Display` shows. Rust's run-time checks read in Go's words (see
/// [`RuntimeError`]).
pub(crate) fn payload_text(p: &(dyn Any + Send), style: Style) -> Cow<'static, str> {
    if let Some(s) = str_payload(p) {
        return match RuntimeError::classify(s) {
            Some(e) => Cow::Owned(e.to_string()),
            None => match p.downcast_ref::<&'static str>() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(s.to_string()),
            },
        };
    }
    if let Some(pr) = p.downcast_ref::<Printable>() {
        return Cow::Owned(WithPrint(&*pr.value, pr.print).to_string());
    }
    if let Some(inner) = p.downcast_ref::<Panic>() {
        return match style {
            Style::Report => inner.report_text(),
            Style::Display => Cow::Owned(inner.to_string()),
        };
    }
    if let Some(e) = error_payload(p) {
        return Cow::Owned(e.to_string());
    }
    if let Some(d) = p.downcast_ref::<Box<dyn fmt::Display + Send + Sync>>() {
        return Cow::Owned(d.to_string());
    }
    if let Some(d) = p.downcast_ref::<Box<dyn fmt::Display + Send>>() {
        return Cow::Owned(d.to_string());
    }
    if style == Style::Report {
        if let Some(v) = p.downcast_ref::<f64>() {
            return Cow::Owned(go_float(*v));
        }
        if let Some(v) = p.downcast_ref::<f32>() {
            return Cow::Owned(go_float(f64::from(*v)));
        }
    }
    display_numbers!(
        p, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, bool, char
    );
    Cow::Borrowed(
        "(a panic value gort cannot print: raise it with gort::panic(value) to print its \
         Display, or recover it and downcast)",
    )
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
                Box::new(Printable::new(std::net::Ipv4Addr::LOCALHOST)),
                "127.0.0.1",
            ),
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
            assert_eq!(payload_text(&*p, Style::Display), want);
        }
    }
}

#[cfg(test)]
mod go_print_tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        // What Go 1.19's `panic(v)` printed for these values.
        for (v, want) in [
            (-1.5, "-1.500000e+000"),
            (1.5, "+1.500000e+000"),
            (2.25, "+2.250000e+000"),
            (0.0, "+0.000000e+000"),
            (-0.0, "-0.000000e+000"),
            (1e100, "+1.000000e+100"),
            (1.23456789e-7, "+1.234568e-007"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(go_float(v), want, "{v}");
        }
        assert_eq!(payload_text(&-1.5f64, Style::Report), "-1.500000e+000");
        assert_eq!(payload_text(&2.25f32, Style::Report), "+2.250000e+000");
        assert_eq!(payload_text(&-1.5f64, Style::Display), "-1.5");
    }
}
