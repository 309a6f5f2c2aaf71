//! hyper-util's pooled client on tokio for the client comparison
//! (`benches/scripts/http_client.py`): `http_client_hyper <url> <tasks> <requests per task>
//! <threads>`. Each task does keep-alive GETs with one shared `hyper_util` legacy client (the
//! pooled client hyper's authors ship, as reqwest uses) and reads every body to its end.
//! Prints the requests per second.

use std::time::Instant;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn main() {
    let mut args = std::env::args().skip(1);
    let url: hyper::Uri = args.next().expect("url").parse().unwrap();
    let tasks: usize = args.next().expect("tasks").parse().unwrap();
    let per: usize = args.next().expect("requests").parse().unwrap();
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("threads"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(tasks)
            .build_http();
        let get = |c: Client<_, Empty<Bytes>>, url: hyper::Uri| async move {
            let resp = c.get(url).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
        };
        // Warm-up: one connection per task.
        let warm: Vec<_> = (0..tasks)
            .map(|_| tokio::spawn(get(client.clone(), url.clone())))
            .collect();
        for t in warm {
            t.await.unwrap();
        }
        let start = Instant::now();
        let runs: Vec<_> = (0..tasks)
            .map(|_| {
                let (c, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    for _ in 0..per {
                        get(c.clone(), url.clone()).await;
                    }
                })
            })
            .collect();
        for t in runs {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{:.0}", (tasks * per) as f64 / secs);
    });
}
