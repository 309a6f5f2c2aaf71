//! The JSON API example through gort's client: create, list, fetch, errors, and a graceful
//! shutdown with the server's context. The example's own source is compiled in here.

#[path = "../json_api.rs"]
#[allow(dead_code)]
mod json_api;

use std::sync::Arc;

#[gort::test(procs = 2)]
fn todos_round_trip_and_shutdown() {
    let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", ln.local_addr().unwrap());
    let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
    let server = gort::http::Server::new(json_api::handler(Arc::new(json_api::Store::default())));
    let done = gort::spawn(move || server.serve_until(ln, &ctx));

    let c = gort::http::Client::new();
    let r = c
        .post(&format!("{base}/todos"), "text/plain", "buy \"milk\"")
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.into_body().text().unwrap(),
        r#"{"id":1,"text":"buy \"milk\""}"#
    );
    c.post(&format!("{base}/todos"), "text/plain", "walk the gopher")
        .unwrap()
        .into_body()
        .bytes()
        .unwrap();
    let list = c.get(&format!("{base}/todos")).unwrap();
    assert_eq!(list.headers()["content-type"], "application/json");
    assert_eq!(
        list.into_body().text().unwrap(),
        r#"[{"id":1,"text":"buy \"milk\""},{"id":2,"text":"walk the gopher"}]"#
    );
    let one = c.get(&format!("{base}/todos/2")).unwrap();
    assert_eq!(
        one.into_body().text().unwrap(),
        r#"{"id":2,"text":"walk the gopher"}"#
    );
    let missing = c.get(&format!("{base}/todos/9")).unwrap();
    assert_eq!(missing.status(), 404);
    missing.into_body().bytes().unwrap();
    let empty = c
        .post(&format!("{base}/todos"), "text/plain", "  ")
        .unwrap();
    assert_eq!(empty.status(), 400);
    empty.into_body().bytes().unwrap();
    // The router's own answers: a method the path does not take, a path nobody serves.
    let wrong = c
        .request(
            gort::http::types::Request::delete(format!("{base}/todos/1"))
                .body(gort::http::Body::empty())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET, HEAD");
    wrong.into_body().bytes().unwrap();
    let nowhere = c.get(&format!("{base}/nowhere")).unwrap();
    assert_eq!(nowhere.status(), 404);
    assert_eq!(nowhere.into_body().text().unwrap(), "404 page not found\n");

    cancel.cancel();
    done.join().unwrap();
}
