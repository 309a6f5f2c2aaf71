//! An async database client called from goroutines: `tokio-postgres` (runtime-agnostic, over
//! tokio's I/O traits) on a gort socket. Its connection future runs in `gort::block_on` on a
//! goroutine of its own; every query is a `block_on` of the client's future on the goroutine
//! that asks, so goroutine code stays blocking-style (Go's `database/sql` shape) while the
//! driver is async. No tokio runtime is involved: the socket's readiness comes from gort's
//! poller, and the wakers park and ready goroutines.
//!
//! ```text
//! PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres cargo run --example postgres
//! ```
//!
//! The test beside it (`examples/tests/postgres.rs`) starts a real PostgreSQL server (Debian's
//! `postgresql` package, which `.ci/run` installs) and runs these functions against it.

use std::io;

use tokio_postgres::{Client, NoTls};

/// A connection: the client, which any number of goroutines share (`&Db` is all a query
/// needs), and the goroutine that drives the connection.
pub struct Db {
    pub client: Client,
    driver: gort::JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// Connects to `host:port` as `user` (trust or no password authentication) to `dbname`.
pub fn connect(host: &str, port: u16, user: &str, dbname: &str) -> io::Result<Db> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(user).dbname(dbname);
    // Go: sql.Open + db.Ping. The socket is gort's; the handshake is tokio-postgres's.
    let stream = gort::net::TcpStream::connect((host, port))?;
    let _ = stream.set_nodelay(true);
    let (client, connection) =
        gort::block_on(cfg.connect_raw(stream, NoTls)).map_err(io::Error::other)?;
    // The connection future reads and writes the socket for every query: it gets a goroutine
    // of its own, which ends when the client is dropped (or the server goes away).
    let driver = gort::spawn(move || gort::block_on(connection));
    Ok(Db { client, driver })
}

impl Db {
    /// Closes the connection: drops the client, then waits for its driver goroutine.
    pub fn close(self) -> Result<(), tokio_postgres::Error> {
        drop(self.client);
        self.driver.join()
    }
}

/// Creates a table and inserts `n` rows from `n` goroutines at once (their queries are
/// pipelined on the one connection), then sums them in SQL.
pub fn concurrent_inserts(db: &std::sync::Arc<Db>, n: i64) -> Result<i64, tokio_postgres::Error> {
    gort::block_on(db.client.batch_execute(
        "DROP TABLE IF EXISTS gophers;
         CREATE TABLE gophers (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    ))?;
    let wg = gort::WaitGroup::new();
    let errors: gort::Chan<tokio_postgres::Error> = gort::Chan::new(n as usize);
    for id in 0..n {
        let (db, wg, errors) = (db.clone(), wg.clone(), errors.clone());
        wg.add(1);
        gort::go!(move || {
            gort::defer!(wg.done());
            let name = format!("gopher-{id}");
            // Go: db.Exec("INSERT ...", id, name)
            if let Err(e) = gort::block_on(db.client.execute(
                "INSERT INTO gophers (id, name) VALUES ($1, $2)",
                &[&id, &name],
            )) {
                errors.send(e);
            }
        });
    }
    wg.wait();
    errors.close();
    if let Some(e) = errors.recv() {
        return Err(e);
    }
    // Go: db.QueryRow("SELECT ...").Scan(&sum)
    let row = gort::block_on(
        db.client
            .query_one("SELECT COALESCE(SUM(id), 0)::BIGINT FROM gophers", &[]),
    )?;
    Ok(row.get(0))
}

/// A transaction that is rolled back: what it inserted is gone afterwards.
pub fn rolled_back(db: &mut Db) -> Result<i64, tokio_postgres::Error> {
    let tx = gort::block_on(db.client.transaction())?;
    gort::block_on(tx.execute("INSERT INTO gophers (id, name) VALUES (-1, 'ghost')", &[]))?;
    gort::block_on(tx.rollback())?;
    let row = gort::block_on(
        db.client
            .query_one("SELECT COUNT(*) FROM gophers WHERE id = -1", &[]),
    )?;
    Ok(row.get(0))
}

#[gort::main]
fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let port: u16 = env("PGPORT", "5432")
        .parse()
        .expect("PGPORT is a port number");
    let db = match connect(
        &env("PGHOST", "127.0.0.1"),
        port,
        &env("PGUSER", "postgres"),
        &env("PGDATABASE", "postgres"),
    ) {
        Ok(db) => std::sync::Arc::new(db),
        Err(e) => {
            eprintln!("postgres: cannot connect: {e} (set PGHOST, PGPORT, PGUSER)");
            std::process::exit(1);
        }
    };
    let sum = concurrent_inserts(&db, 100).expect("inserts");
    println!("100 goroutines inserted a row each; SUM(id) = {sum}");
    let mut db = std::sync::Arc::into_inner(db).expect("every goroutine is done with it");
    let ghosts = rolled_back(&mut db).expect("transaction");
    println!("rows left by the rolled-back transaction: {ghosts}");
    db.close().expect("the connection ends cleanly");
}
