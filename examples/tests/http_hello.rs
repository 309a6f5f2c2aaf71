//! The `gort::http` hello example answers a client, with keep-alive, as curl and Go's client
//! would use it. The example's own source is compiled in here.

#[path = "../http_hello.rs"]
#[allow(dead_code)]
mod http_hello;

#[gort::test(procs = 2)]
fn hello_over_keep_alive() {
    let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    gort::go!(move || {
        let _ = gort::http::Server::new(http_hello::hello).serve(ln);
    });
    let c = gort::http::Client::new();
    for path in ["/", "/gopher", "/x?y=z"] {
        let r = c.get(&format!("http://{addr}{path}")).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/plain; charset=utf-8"
        );
        assert_eq!(r.into_body().text().unwrap(), "Hello, World!");
    }
}
