//! gort's HTTP client for the client comparison (`benches/scripts/http_client.py`):
//! `http_client_gort <url> <goroutines> <requests per goroutine>`. Each goroutine does
//! keep-alive GETs with one shared `gort::http::Client` (its pool holds a connection per
//! goroutine after the warm-up) and reads every body to its end. Prints the requests per
//! second. GOMAXPROCS comes from the environment.

use std::time::Instant;

#[gort::main]
fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("url");
    let gs: usize = args.next().expect("goroutines").parse().unwrap();
    let per: usize = args.next().expect("requests").parse().unwrap();
    let client = gort::http::Client::new();
    let get = |c: &gort::http::Client, url: &str| {
        let resp = c.get(url).unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().bytes().unwrap();
    };
    // Warm-up: one connection per goroutine.
    let wg = gort::WaitGroup::new();
    for _ in 0..gs {
        let (c, url, wg) = (client.clone(), url.clone(), wg.clone());
        wg.add(1);
        gort::go!(move || {
            get(&c, &url);
            wg.done();
        });
    }
    wg.wait();
    let start = Instant::now();
    for _ in 0..gs {
        let (c, url, wg) = (client.clone(), url.clone(), wg.clone());
        wg.add(1);
        gort::go!(move || {
            for _ in 0..per {
                get(&c, &url);
            }
            wg.done();
        });
    }
    wg.wait();
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0}", (gs * per) as f64 / secs);
}
