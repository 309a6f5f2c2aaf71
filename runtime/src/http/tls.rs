//! TLS for gort's HTTP (feature `tls`): a rustls session over a gort socket, as hyper's I/O
//! (`TlsStream`), for the server ([`Server::tls`](super::Server::tls)) and the client
//! (`https://` URLs); and the configurations Go's defaults correspond to
//! ([`server_config`], [`client_config`]).
//!
//! The session is rustls's own, sans-I/O: its `read_tls` / `write_tls` move records between
//! the socket and the session through an adapter that turns the socket's `Pending` into
//! `WouldBlock` (the waker is left with the poller, as for a plain socket), which is all the
//! poll functions below need. The handshake runs first, eagerly, in `block_on` on the
//! connection's goroutine: the server learns the ALPN protocol (`h2` or `http/1.1`) before it
//! picks hyper's connection type.
//!
//! Invariants of `TlsStream`'s poll functions (no lost wake-up): each returns `Pending` only
//! after a socket call returned `Pending` in the same poll, which left the task's waker with
//! the poller for that direction; and plaintext rustls already holds is always handed out
//! before the socket is read again (so `read_tls` never fails on a full plaintext buffer).

use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

pub use rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::net::TcpStream;

/// A rustls session over a gort socket.
pub(crate) struct TlsStream {
    sock: TcpStream,
    conn: rustls::Connection,
    /// `close_notify` was queued (by `poll_shutdown`).
    closing: bool,
}

/// The socket as `std::io` for rustls's `read_tls` / `write_tls`, inside one poll: `Pending`
/// becomes `WouldBlock`, with the task's waker left with the poller.
struct Sock<'a, 'b> {
    sock: &'a TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for Sock<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.sock.poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Sock<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.sock.poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.sock.poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsStream {
    /// The server's side of a session on an accepted socket (the handshake has not run).
    pub(crate) fn server(sock: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            conn: conn.into(),
            closing: false,
        })
    }

    /// The client's side of a session with `host` (its certificate must name it) on a
    /// connected socket (the handshake has not run).
    pub(crate) fn client(
        sock: TcpStream,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> io::Result<Self> {
        // An IP literal in brackets (`[::1]`) as the URL has it.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            conn: conn.into(),
            closing: false,
        })
    }

    /// The socket under the session.
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Whether the handshake chose HTTP/2 (ALPN `h2`).
    pub(crate) fn is_h2(&self) -> bool {
        self.conn.alpn_protocol() == Some(b"h2")
    }

    /// Sends what rustls has queued until it has nothing more or the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut sock = Sock {
                sock: &self.sock,
                cx,
            };
            match self.conn.write_tls(&mut sock) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads records from the socket once and processes them; `Ok(0)` at the end of the
    /// stream. A record rustls rejects is an `InvalidData` error (its alert is sent if the
    /// socket takes it at once).
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut sock = Sock {
            sock: &self.sock,
            cx,
        };
        let n = match self.conn.read_tls(&mut sock) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Err(e) = self.conn.process_new_packets() {
            let _ = self.poll_send(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(n))
    }

    /// Runs the handshake to its end (its last flight sent).
    pub(crate) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let sent = self.poll_send(cx)?;
            if !self.conn.is_handshaking() {
                return sent.map(Ok);
            }
            if self.conn.wants_read() {
                match self.poll_receive(cx)? {
                    Poll::Ready(0) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "tls: the peer closed the connection during the handshake",
                        )))
                    }
                    Poll::Ready(_) => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if sent.is_pending() {
                return Poll::Pending;
            }
            // Handshaking, nothing to send, nothing wanted: rustls never stays so.
            return Poll::Ready(Err(io::Error::other(
                "tls: the handshake stalled (rustls wants neither to read nor to write)",
            )));
        }
    }

    /// Hands the decrypted bytes rustls holds to `take` (which returns how many it took), or
    /// `Ok(0)` at the end of the stream: the peer's `close_notify`, or a close without one at
    /// a record boundary (Go reads both as EOF; a truncation is then HTTP's framing to catch).
    pub(crate) fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        take: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.conn.reader().into_first_chunk() {
                Ok(chunk) => {
                    let n = take(chunk);
                    self.conn.reader().consume(n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without `close_notify`, at a record boundary (rustls says so
                // only then): the end of the stream, as Go's crypto/tls reads it (many servers
                // close this way). HTTP's own framing still catches a body cut short.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            // What the session queued meanwhile (a key update, session tickets, an alert)
            // goes out; a full socket does not hold up the read.
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            // Records in. At the end of the stream rustls has seen it, and its reader above
            // says how (an empty chunk or `UnexpectedEof`), never `WouldBlock` again.
            std::task::ready!(self.poll_receive(cx))?;
        }
    }

    /// Encrypts what rustls's buffer takes of `buf` and sends what it can.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let n = self.conn.writer().write(buf)?;
            let sent = self.poll_send(cx)?;
            if n > 0 {
                // Taken; what the socket did not take yet goes with the next write or flush.
                return Poll::Ready(Ok(n));
            }
            if sent.is_pending() {
                // rustls's buffer is full and the socket too: the poller wakes us.
                return Poll::Pending;
            }
            // rustls's buffer was full and is now sent: it takes `buf` this time.
        }
    }

    /// Sends everything rustls holds.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.conn.writer().flush()?;
        self.poll_send(cx)
    }

    /// Sends `close_notify` and shuts the socket's write side (Go's `tls.Conn.CloseWrite`).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closing {
            self.closing = true;
            self.conn.send_close_notify();
        }
        match std::task::ready!(self.poll_send(cx)) {
            // A peer that is gone already is not an error here.
            Ok(()) | Err(_) => {
                let _ = self.sock.shutdown(std::net::Shutdown::Write);
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// The handshake of a session as a future.
pub(crate) struct Handshake<'a>(pub(crate) &'a mut TlsStream);

impl std::future::Future for Handshake<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_handshake(cx)
    }
}

/// The crypto provider gort's configurations use: rustls's *ring* provider. TLS 1.2 and 1.3
/// with X25519, P-256 and P-384 key exchange (Go 1.19's set), but no post-quantum hybrid,
/// for which rustls 0.23.48 deprecated it in favour of aws-lc-rs. gort keeps *ring* for its
/// build: aws-lc-rs compiles a large C library (minutes on this 2-core CI). A program that
/// wants the hybrid builds its `ServerConfig` / `ClientConfig` on rustls's aws-lc-rs
/// provider and passes it to [`Server::tls`](super::Server::tls) or
/// [`ClientBuilder::tls`](super::ClientBuilder::tls).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static P: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    #[allow(deprecated)] // see above
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The ALPN protocols a server offers and a client asks for: HTTP/2 first, as Go's.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// A server configuration from PEM files, as Go's `ListenAndServeTLS(certFile, keyFile)`
/// reads them: `cert_file` holds the certificate chain, leaf first; `key_file` the private
/// key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
///
/// ```no_run
/// let cfg = gort::http::tls::server_config("cert.pem", "key.pem").unwrap();
/// ```
pub fn server_config(
    cert_file: impl AsRef<Path>,
    key_file: impl AsRef<Path>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let (cert_file, key_file) = (cert_file.as_ref(), key_file.as_ref());
    let pem = |e: rustls::pki_types::pem::Error, path: &Path| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tls: {}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| pem(e, cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e, cert_file))?;
    if chain.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tls: {}: no certificate in the file", cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| pem(e, key_file))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    cfg.alpn_protocols = alpn();
    Ok(Arc::new(cfg))
}

/// A client configuration that trusts the roots in `roots` (PEM certificates) and no other;
/// for servers with a private CA (Go: a `tls.Config` with `RootCAs`). ALPN `h2` and
/// `http/1.1`, as Go's client: the server chooses.
///
/// ```no_run
/// let cfg = gort::http::tls::client_config_with_roots("ca.pem").unwrap();
/// let client = gort::http::Client::builder().tls(cfg).build();
/// ```
pub fn client_config_with_roots(roots: impl AsRef<Path>) -> io::Result<Arc<rustls::ClientConfig>> {
    let path = roots.as_ref();
    let mut store = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tls: {}: {e}", path.display()),
            )
        })?;
    for c in certs {
        store
            .add(c)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    if store.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tls: {}: no certificate in the file", path.display()),
        ));
    }
    client_config_from(store)
}

fn client_config_from(store: rustls::RootCertStore) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn();
    Ok(Arc::new(cfg))
}

/// The client configuration `https://` URLs get by default: the system's trusted roots (as
/// Go's `crypto/x509` loads them: `/etc/ssl/certs` and the like, through
/// `rustls-native-certs`), read once. An error if the system has none.
pub fn client_config() -> io::Result<Arc<rustls::ClientConfig>> {
    static C: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    C.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = rustls::RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_string(), |e| e.to_string());
            return Err(format!("tls: no system root certificates ({why})"));
        }
        client_config_from(store).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(io::Error::other)
}
