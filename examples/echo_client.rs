//! A client for `echo`: `conns` connections at once, each sending `msgs` 64-byte messages and
//! checking every echoed byte; prints the messages per second.
//!
//! ```text
//! cargo run --release --example echo_client -- 127.0.0.1:7000 100 10000
//! ```

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gort::net::TcpStream;

#[gort::main]
fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let conns: u64 = args
        .next()
        .map_or(10, |s| s.parse().expect("conns is a number"));
    let msgs: u64 = args
        .next()
        .map_or(1000, |s| s.parse().expect("msgs is a number"));

    let t = Instant::now();
    let total = Arc::new(AtomicU64::new(0));
    let wg = gort::WaitGroup::new();
    for c in 0..conns {
        wg.add(1);
        let (addr, total, wg) = (addr.clone(), total.clone(), wg.clone());
        gort::go!(move || {
            let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            s.set_nodelay(true).unwrap();
            let mut msg = [0u8; 64];
            let mut back = [0u8; 64];
            for i in 0..msgs {
                msg[..8].copy_from_slice(&c.to_le_bytes());
                msg[8..16].copy_from_slice(&i.to_le_bytes());
                s.write_all(&msg).unwrap();
                s.read_exact(&mut back).unwrap();
                assert_eq!(msg, back, "connection {c}, message {i}");
            }
            total.fetch_add(msgs, Ordering::Relaxed);
            wg.done();
        });
    }
    wg.wait();
    let n = total.load(Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n} messages over {conns} connections in {secs:.3} s: {:.0} msg/s",
        n as f64 / secs
    );
}
