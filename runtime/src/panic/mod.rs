//! Panics that end a goroutine: payload text and the fatal report.
//!
//! Go prints an unrecovered panic as `panic: <value>` followed by the goroutine's header and
//! exits with status 2. This module owns that report. (Defer, recover and the panic chain build
//! on it.)

use std::any::Any;
use std::io::Write;

/// The text Go would print for a panic value: strings as they are, other values by type.
pub(crate) fn payload_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Prints Go's report for an unrecovered panic in goroutine `goid` and exits with status 2.
pub(crate) fn die(goid: u64, payload: &(dyn Any + Send)) -> ! {
    let text = payload_text(payload);
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "panic: {text}\n\ngoroutine {goid} [running]:\n");
    let _ = err.flush();
    std::process::exit(2)
}
