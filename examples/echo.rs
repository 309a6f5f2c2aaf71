//! A TCP echo server: one goroutine per connection, written as blocking code.
//!
//! ```text
//! cargo run --release --example echo -- 127.0.0.1:7000
//! cargo run --release --example echo_client -- 127.0.0.1:7000 100 10000
//! ```

use std::io;

use gort::net::{TcpListener, TcpStream};

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let ln = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("echo: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    eprintln!("echo: listening on {}", ln.local_addr().unwrap());
    for conn in ln.incoming() {
        match conn {
            Ok(conn) => gort::go!(echo(conn)),
            Err(e) => eprintln!("echo: accept: {e}"),
        }
    }
}

/// Copies what the client sends back to it until the client hangs up.
fn echo(conn: TcpStream) {
    // `io::copy` is std's loop: read (parks this goroutine), write (parks while the peer is
    // slow). `Read` and `Write` are implemented for `&TcpStream`, so one stream serves both.
    if let Err(e) = io::copy(&mut &conn, &mut &conn) {
        eprintln!("echo: {:?}: {e}", conn.peer_addr());
    }
}
