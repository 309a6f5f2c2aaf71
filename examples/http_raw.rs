//! A small HTTP/1.1 server written by hand on `gort::net`: one goroutine per connection,
//! blocking-style code, keep-alive and pipelining, request parsing by `httparse`. It shows how
//! a protocol is served with plain reads and writes on goroutines; for HTTP itself use
//! `gort::http` (`examples/http_hello.rs`). Every request gets `Hello, World!`.
//!
//! ```text
//! cargo run --release --example http_raw -- 127.0.0.1:8080
//! curl -v http://127.0.0.1:8080/
//! ```
//!
//! GOMAXPROCS in the environment sets the number of Ps, as in Go.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use gort::net::{TcpListener, TcpStream};

const BODY: &[u8] = b"Hello, World!";
/// Requests larger than this (head and body) are refused.
const MAX_REQUEST: usize = 64 * 1024;

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let ln = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("http_raw: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    eprintln!(
        "http_raw: listening on http://{}/",
        ln.local_addr().unwrap()
    );
    serve(ln);
}

/// Accepts connections forever, each served by its own goroutine (Go's `http.Serve`).
pub fn serve(ln: TcpListener) {
    loop {
        match ln.accept() {
            Ok((conn, _)) => {
                gort::go!(move || {
                    // A client that goes away mid-request is its own business.
                    let _ = handle(conn);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // closed
            Err(e) => {
                // Out of descriptors, say: back off as Go's server does, then go on.
                eprintln!("http_raw: accept: {e}");
                gort::time::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// What a parsed request asks of the connection.
struct Request {
    /// Bytes the head and body take in the buffer.
    len: usize,
    /// The client wants the connection closed after this response.
    close: bool,
}

/// Serves one connection until the client closes it or asks to.
fn handle(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; 8192];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(4096);
    loop {
        // Answer every complete request in the buffer (pipelining), then write once.
        let mut close = false;
        while start < end {
            match parse(&buf[start..end]) {
                Ok(Some(req)) => {
                    start += req.len;
                    respond(&mut out, 200, "OK", BODY, req.close);
                    if req.close {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break, // partial: read more
                Err(status) => {
                    respond(&mut out, status, reason(status), b"", true);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            out.clear();
        }
        if close {
            return conn.shutdown(std::net::Shutdown::Write);
        }
        // Make room: move a partial request to the front, grow up to the limit.
        if start == end {
            (start, end) = (0, 0);
        } else if start > 0 {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        if end == buf.len() {
            if buf.len() >= MAX_REQUEST {
                respond(&mut out, 431, reason(431), b"", true);
                conn.write_all(&out)?;
                return Ok(());
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = conn.read(&mut buf[end..])?; // parks until the client sends
        if n == 0 {
            return Ok(()); // the client hung up
        }
        end += n;
    }
}

/// Parses one request at the front of `b`: `Ok(None)` if incomplete, `Err(status)` if bad.
fn parse(b: &[u8]) -> Result<Option<Request>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(b) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes unless told otherwise.
    let mut close = req.version != Some(1);
    let mut body = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(400u16)?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(501); // chunked request bodies: not in this example
        }
    }
    if head + body > MAX_REQUEST {
        return Err(413);
    }
    if b.len() < head + body {
        return Ok(None); // the body is still coming
    }
    Ok(Some(Request {
        len: head + body,
        close,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Error",
    }
}

/// Appends a response with Go's headers (`Date`, `Content-Length`, `Content-Type`).
fn respond(out: &mut Vec<u8>, status: u16, reason: &str, body: &[u8], close: bool) {
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\nDate: ");
    http_date(out);
    let _ = write!(
        out,
        "\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    out.extend_from_slice(body);
}

thread_local! {
    /// The `Date` header of the current second, per thread (Go's server formats it per
    /// response; hyper caches it per second, as this does). A goroutine may move between
    /// threads, but it only reads the value while it runs.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the current time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, format_date(now));
        }
        out.extend_from_slice(&d.1);
    });
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110).
fn format_date(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let mut b = [0u8; 29];
    b.copy_from_slice(&s.as_bytes()[..29]);
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(
            &super::format_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(&super::format_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &super::format_date(1_709_164_800),
            b"Thu, 29 Feb 2024 00:00:00 GMT"
        );
    }
}
