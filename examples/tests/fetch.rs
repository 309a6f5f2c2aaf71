//! The concurrent fetcher example: all pages summed with a limit, and the first failure
//! reported. The example's own source is compiled in here.

#[path = "../fetch.rs"]
#[allow(dead_code)]
mod fetch;

#[gort::test(procs = 2)]
fn fetches_concurrently_and_stops_at_the_first_failure() {
    let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", ln.local_addr().unwrap());
    gort::go!(move || {
        let _ = gort::http::Server::new(fetch::pages).serve(ln);
    });
    let c = gort::http::Client::new();
    let urls: Vec<String> = (1..=40).map(|i| format!("{base}/page/{i}")).collect();
    assert_eq!(
        fetch::fetch_all(&c, urls, 4).unwrap(),
        (1..=40).sum::<u64>()
    );
    let urls = vec![format!("{base}/page/3"), format!("{base}/missing")];
    let e = fetch::fetch_all(&c, urls, 1).unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}
