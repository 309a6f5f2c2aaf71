//! The PostgreSQL example against a real server: this test starts one from Debian's
//! `postgresql` package (`initdb` and `pg_ctl` in a temporary directory, trust
//! authentication on 127.0.0.1, a free port), runs the example's functions against it, and
//! stops it. `.ci/run` installs the package and sets `GORT_REQUIRE_POSTGRES=1`, which makes a
//! missing server a failure; elsewhere a machine without it skips the test with a note.

#[path = "../postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A PostgreSQL server in a temporary directory, stopped and removed on drop.
struct Server {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest of Debian's
/// `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

/// Runs `cmd` as the `postgres` user when this process is root (PostgreSQL refuses to run
/// as root), as this user otherwise.
fn as_server_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    fn start() -> Option<Server> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("GORT_REQUIRE_POSTGRES").is_none(),
                "GORT_REQUIRE_POSTGRES is set but no PostgreSQL server is installed \
                 (apt-get install postgresql)"
            );
            eprintln!(
                "note: PostgreSQL is not installed (apt-get install postgresql): the \
                 PostgreSQL example's test is skipped; .ci/run installs it and requires it"
            );
            return None;
        };
        let dir = std::env::temp_dir().join(format!("gort-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc_geteuid() } == 0 {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&dir);
                    c
                },
                "chown",
            );
        }
        let data = dir.join("data");
        let mut c = as_server_user(&bin.join("initdb"));
        c.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        run(c, "initdb");
        // A free port: the kernel's pick for a socket just closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server { bin, dir, port };
        let mut c = as_server_user(&server.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(server.dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                server.dir.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(c, "pg_ctl start");
        Some(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut c = as_server_user(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[gort::test(procs = 2)]
fn goroutines_query_a_real_postgresql_through_tokio_postgres() {
    let Some(server) = Server::start() else {
        return;
    };
    let db = postgres::connect("127.0.0.1", server.port, "postgres", "postgres")
        .expect("connects to the server the test started");
    let db = Arc::new(db);
    // 200 goroutines each insert a row: SUM(0..200).
    assert_eq!(
        postgres::concurrent_inserts(&db, 200).unwrap(),
        (0..200).sum::<i64>()
    );
    let mut db = Arc::into_inner(db).unwrap();
    assert_eq!(postgres::rolled_back(&mut db).unwrap(), 0);
    // A query error is an error, not a hang or a panic, and the connection goes on.
    let e = gort::block_on(db.client.query("SELECT * FROM no_such_table", &[])).unwrap_err();
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );
    let msg = e.as_db_error().map(|d| d.message().to_string());
    assert!(
        msg.as_deref().unwrap_or("").contains("no_such_table"),
        "{e:?}"
    );
    let row = gort::block_on(db.client.query_one("SELECT 40 + 2", &[])).unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    // Dropping the client ends the connection's goroutine cleanly.
    db.close().unwrap();
    // A server that goes away mid-connection: the next query fails with an error.
    let db = postgres::connect("127.0.0.1", server.port, "postgres", "postgres").unwrap();
    drop(server); // pg_ctl stop -m immediate
    let r = gort::block_on(db.client.query_one("SELECT 1", &[]));
    assert!(r.is_err(), "a query after the server stopped succeeded");
    // The driver goroutine ends too (with the connection's error, or cleanly if it saw the
    // server's goodbye first): the join returns rather than hangs.
    let _ = db.close();
}
