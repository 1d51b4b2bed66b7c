//! The Engine API over TCP with mutual TLS, as dockerd's `--tlsverify`:
//! the client shows a certificate its CA signed, and checks the daemon's
//! (`DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH` holding `ca.pem`,
//! `cert.pem`, `key.pem`).
//!
//! - [`TlsListener`] accepts TCP connections and makes the handshakes off
//!   the accept loop (a slow client holds up no one), with the server
//!   configuration [`TlsListener::new`] is given at that moment: a
//!   `watch` of it, so that the certificate can come later (a daemon
//!   becomes a manager) or change. While there is none, connections are
//!   closed at once.
//! - Each connection's client certificate goes through an [`Authorize`]
//!   check; a refused client gets a 403 with the reason for every request,
//!   rather than a bare TLS alert.
//!
//! ```no_run
//! # async fn run(
//! #     backend: std::sync::Arc<dyn swarm_engine::Backend>,
//! #     config: std::sync::Arc<swarm_engine::tls::rustls::ServerConfig>,
//! # ) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use swarm_engine::tls::{Authorize, TlsListener};
//!
//! let tcp = tokio::net::TcpListener::bind("0.0.0.0:2376").await?;
//! let (_config, configs) = tokio::sync::watch::channel(Some(config));
//! let anyone: Authorize = Arc::new(|_cert: &[u8]| Ok(()));
//! let listener = TlsListener::new(tcp, configs, anyone)?;
//! swarm_engine::tls::serve(listener, backend, Default::default()).await
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::{ApiError, Backend};

pub use tokio_rustls::rustls;

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at most; more connections wait to be accepted.
const HANDSHAKES: usize = 128;

/// Whether a client certificate (the leaf, DER) may use the API; the
/// refusal's text is what the client reads.
pub type Authorize = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// The other end of a TLS connection, as the handlers see it.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// Why it may not use the API, if it may not.
    pub refusal: Option<Arc<str>>,
    /// Whether it showed no certificate at all (it may still GET the
    /// paths [`TlsListener::open_to_anonymous`] names).
    pub anonymous: bool,
}

impl TlsPeer {
    /// Whether it showed a certificate [`Authorize`] let in.
    #[must_use]
    pub fn certified(&self) -> bool {
        self.refusal.is_none() && !self.anonymous
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Accepts TLS connections on a TCP listener; see the [module](self).
pub struct TlsListener {
    local: SocketAddr,
    open: Arc<[String]>,
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    accepting: tokio::task::AbortHandle,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl TlsListener {
    /// Serves TLS on `tcp` with the configuration `configs` holds when a
    /// client connects, checking each client's certificate with
    /// `authorize`.
    ///
    /// # Errors
    /// If the listener has no local address.
    pub fn new(
        tcp: TcpListener,
        configs: watch::Receiver<Option<Arc<rustls::ServerConfig>>>,
        authorize: Authorize,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, incoming) = mpsc::channel(64);
        let accepting = tokio::spawn(accept(tcp, configs, authorize, tx)).abort_handle();
        Ok(Self {
            local,
            open: Arc::from([]),
            incoming,
            accepting,
        })
    }

    /// Lets clients without a certificate GET the paths under these
    /// prefixes (`/ui`: a read-only web page); everything else still
    /// needs one.
    #[must_use]
    pub fn open_to_anonymous(mut self, prefixes: &[&str]) -> Self {
        self.open = prefixes.iter().map(|p| (*p).to_owned()).collect();
        self
    }
}

async fn accept(
    tcp: TcpListener,
    configs: watch::Receiver<Option<Arc<rustls::ServerConfig>>>,
    authorize: Authorize,
    tx: mpsc::Sender<(TlsStream<TcpStream>, TlsPeer)>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, most likely: wait, as axum does.
                tracing::debug!(error = %e, "cannot accept an Engine API connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(config) = configs.borrow().clone() else {
            tracing::info!(%addr, "Engine API connection closed: TLS has no certificate yet");
            continue;
        };
        let (tx, authorize) = (tx.clone(), authorize.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%addr, error = %e, "Engine API TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%addr, "Engine API TLS handshake timed out");
                    return;
                }
            };
            let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let anonymous = cert.is_none();
            let refusal = match cert {
                Some(cert) => authorize(cert.as_ref()).err().map(Arc::from),
                None => Some(Arc::from(
                    "the Engine API needs a client certificate from this swarm's CA: \
                     set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to a manager's <data-dir>/client",
                )),
            };
            if let Some(why) = &refusal
                && !anonymous
            {
                tracing::info!(%addr, refusal = %why, "Engine API client refused");
            }
            let peer = TlsPeer {
                addr,
                refusal,
                anonymous,
            };
            let _ = tx.send((tls, peer)).await;
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // The accept loop ends only when aborted, by this listener's
            // drop; nothing comes any more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local,
            refusal: None,
            anonymous: false,
        })
    }
}

/// Answers every request of a refused client with a 403 and the reason,
/// but a client without a certificate's GETs of the `open` paths.
async fn refuse(
    open: Arc<[String]>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let opened = peer.anonymous
        && matches!(
            request.method(),
            &axum::http::Method::GET | &axum::http::Method::HEAD
        )
        && open.iter().any(|p| {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        });
    match peer.refusal {
        Some(why) if !opened => {
            ApiError::new(axum::http::StatusCode::FORBIDDEN, why.as_ref()).into_response()
        }
        _ => next.run(request).await,
    }
}

/// Serves `backend` on `listener`, as [`crate::serve`] does on a socket,
/// to the clients [`Authorize`] lets in, until `shutdown` is cancelled.
///
/// # Errors
/// If the listener fails.
pub async fn serve(
    listener: TlsListener,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_app(listener, crate::router(backend), shutdown).await
}

/// [`serve`] of `app` (a [`crate::router`] or [`crate::router_with`]):
/// every request of a refused client is answered with a 403.
///
/// # Errors
/// If the listener fails.
pub async fn serve_app(
    listener: TlsListener,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let open = listener.open.clone();
    let app = app.layer(axum::middleware::from_fn(
        move |peer: ConnectInfo<TlsPeer>, request: Request, next: Next| {
            refuse(open.clone(), peer, request, next)
        },
    ));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<TlsPeer>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// A server configuration for the Engine API: `cert_pem` (then its CA's
/// `ca_pem`, for clients that want the chain) with `key_pem`, and client
/// certificates signed by `ca_pem` checked (a client without one is let
/// through the handshake, for [`TlsListener`] to answer).
///
/// # Errors
/// If a PEM cannot be read, or the key does not suit the certificate.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = |pem: &str, what: &str| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the {what} certificate is not PEM: {e}"))
    };
    let ca = certs(ca_pem, "CA")?;
    let mut chain = certs(cert_pem, "server")?;
    chain.extend(ca.iter().cloned());
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("the server key is not PEM: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots
            .add(c)
            .map_err(|e| format!("the CA certificate cannot be trusted: {e}"))?;
    }
    // A client without a certificate gets through the handshake, and then
    // a 403 that says what to do (or the paths open to it).
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| format!("client certificate checks: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the server certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
