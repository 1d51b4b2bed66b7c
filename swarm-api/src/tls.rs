//! Mutual TLS between swarm processes.
//!
//! - Every manager serves with its node certificate (and the CA after it,
//!   so that a joining node can read the CA off the handshake) and asks
//!   each client for a certificate, which is optional at the TLS layer so
//!   that a joining node, which has none yet, can reach the join call.
//! - Each service then checks who calls ([`RequireRole`] as a tonic
//!   interceptor, [`peer_identity`] inside a handler): raft is for
//!   managers, the control API for managers and clients, the dispatcher
//!   for nodes (each for itself), and only the join call is open.
//! - Clients check the manager's certificate against the cluster CA and
//!   the name [`MANAGER_SERVER_NAME`], which only manager certificates
//!   carry.
//! - A joining node has only its token. [`fetch_root_ca`] reads the CA
//!   certificate off a TLS handshake and accepts it only if its digest is
//!   the token's; from then on it verifies the manager as everyone does.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, ServerTlsConfig};
use tonic::{Request, Status};

use crate::ca::{self, CaError, Identity, MANAGER_SERVER_NAME, PeerRole};

/// A node's (or a client's) TLS material: the cluster CA certificate, its
/// own certificate and its private key, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity().ok())
            .finish_non_exhaustive()
    }
}

const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

impl Credentials {
    /// Credentials from PEM text; the certificate must name an identity.
    pub fn new(
        ca_pem: impl Into<String>,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Result<Self, CaError> {
        let me = Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        };
        me.identity()?;
        Ok(me)
    }

    /// Reads `ca.pem`, `cert.pem` and `key.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let read_set = |d: &Path| {
            let read = |name: &str| {
                std::fs::read_to_string(d.join(name)).map_err(|e| {
                    CaError::Certificate(format!("cannot read {}: {e}", d.join(name).display()))
                })
            };
            Self::new(read(CA_FILE)?, read(CERT_FILE)?, read(KEY_FILE)?)
        };
        let mut first = None;
        // A save may be swapping the set in right now: its staged set is
        // whole once `dir` has moved aside. Only reads, never a rename.
        for _ in 0..3 {
            match read_set(dir) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
            for aside in [sibling(dir, "new"), sibling(dir, "old")] {
                if !dir.exists()
                    && let Ok(c) = read_set(&aside)
                {
                    return Ok(c);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Err(first.expect("set above"))
    }

    /// Finishes a [`Credentials::save`] that a crash stopped between its
    /// two renames. Only the owner of `dir` calls this, at start.
    pub fn recover(dir: &Path) -> std::io::Result<()> {
        if dir.exists() {
            return Ok(());
        }
        // The staged set was synced before the renames: it is whole.
        for aside in [sibling(dir, "new"), sibling(dir, "old")] {
            if aside.join(KEY_FILE).exists() {
                return std::fs::rename(&aside, dir);
            }
        }
        Ok(())
    }

    /// Writes the three files into `dir`; the key is readable by its
    /// owner only. The set is replaced as one: it is written and synced
    /// beside `dir`, then swapped in by renames, so a crash never pairs a
    /// new certificate with an old key ([`Credentials::load`] finishes an
    /// interrupted swap; [`Credentials::recover`] completes it).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let staged = sibling(dir, "new");
        let old = sibling(dir, "old");
        let _ = std::fs::remove_dir_all(&staged);
        std::fs::create_dir_all(&staged)?;
        for (name, text, private) in [
            (CA_FILE, &self.ca_pem, false),
            (CERT_FILE, &self.cert_pem, false),
            (KEY_FILE, &self.key_pem, true),
        ] {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            if private {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            #[cfg(not(unix))]
            let _ = private;
            let mut f = options.open(staged.join(name))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        sync_dir(&staged)?;
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(dir, &old)?;
        }
        std::fs::rename(&staged, dir)?;
        let _ = std::fs::remove_dir_all(&old);
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
            _ => Ok(()),
        }
    }

    /// Who the certificate names.
    pub fn identity(&self) -> Result<Identity, CaError> {
        ca::identity_of(&ca::cert_der(&self.cert_pem)?)
    }

    /// The cluster CA certificate (PEM).
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The certificate (PEM).
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key (PEM).
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The server side of a manager: its certificate followed by the CA's,
    /// and client certificates from the cluster CA checked when presented.
    #[must_use]
    pub fn server_tls(&self) -> ServerTlsConfig {
        let chain = format!("{}\n{}", self.cert_pem.trim_end(), self.ca_pem);
        ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(chain, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
            .timeout(Duration::from_secs(5))
    }

    /// The client side: this certificate, and a manager's checked against
    /// the cluster CA.
    #[must_use]
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .domain_name(MANAGER_SERVER_NAME)
            .assume_http2(true)
    }

    /// An endpoint for the manager at `addr` (`host:port`) over mutual
    /// TLS, with short connect and keep-alive timeouts.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        endpoint(addr)?
            .tls_config(self.client_tls())
            .map_err(|e| format!("TLS settings for {addr}: {e}"))
    }
}

/// `dir` with `.suffix` added to its name.
fn sibling(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn endpoint(addr: &str) -> Result<Endpoint, String> {
    Ok(Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| format!("bad manager address {addr:?}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        // A manager that vanished without closing the connection is
        // noticed within seconds, not at the next TCP timeout.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true))
}

/// An endpoint for a node that has no certificate yet (the join call):
/// the manager is checked against `ca_pem`, the client shows nothing.
pub fn anonymous_endpoint(addr: &str, ca_pem: &str) -> Result<Endpoint, String> {
    endpoint(addr)?
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .domain_name(MANAGER_SERVER_NAME)
                .assume_http2(true),
        )
        .map_err(|e| format!("TLS settings for {addr}: {e}"))
}

/// Who made `request`, from its verified client certificate; `None` for
/// a connection without one (or without TLS).
pub fn peer_identity<T>(request: &Request<T>) -> Option<Identity> {
    let certs = request.peer_certs()?;
    ca::identity_of(certs.first()?.as_ref()).ok()
}

/// A tonic interceptor that lets through only callers whose certificate
/// holds one of the `allowed` roles.
#[derive(Debug, Clone, Copy)]
pub struct RequireRole {
    allowed: &'static [PeerRole],
    service: &'static str,
}

impl RequireRole {
    /// Admits `allowed` to `service` (its name appears in refusals).
    #[must_use]
    pub const fn new(service: &'static str, allowed: &'static [PeerRole]) -> Self {
        Self { allowed, service }
    }
}

impl Interceptor for RequireRole {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match peer_identity(&request) {
            Some(who) if self.allowed.contains(&who.role) => Ok(request),
            Some(who) => Err(Status::permission_denied(format!(
                "{} {} may not call the {} API: it is for {}",
                role_name(who.role),
                who.node_id,
                self.service,
                self.allowed
                    .iter()
                    .map(|r| format!("{}s", role_name(*r)))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
            None => Err(Status::unauthenticated(format!(
                "the {} API needs a client certificate from this cluster's CA{}",
                self.service,
                if self.service == "control" {
                    " (swarmctl: --tls-dir, or the SWARM_CERT_PATH variable)"
                } else {
                    ""
                }
            ))),
        }
    }
}

fn role_name(role: PeerRole) -> &'static str {
    match role {
        PeerRole::Manager => "manager",
        PeerRole::Worker => "worker",
        PeerRole::Client => "client",
    }
}

/// Reads the CA certificate (PEM) off a TLS handshake with the manager at
/// `addr`, and accepts it only if its digest is `digest` (from the join
/// token). Nothing else is sent: the handshake is abandoned once the
/// certificates have been seen.
pub async fn fetch_root_ca(addr: &str, digest: &str) -> Result<String, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(Capture {
        digest: digest.to_owned(),
        found: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Certificate(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let unreachable = |e: &dyn std::fmt::Display| {
        CaError::Certificate(format!("cannot reach the manager at {addr}: {e}"))
    };
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|e| unreachable(&e))?
        .map_err(|e| unreachable(&e))?;
    let name = ServerName::try_from(MANAGER_SERVER_NAME).expect("a valid DNS name");
    // The verifier ends the handshake once it has looked.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await;
    let found = capture
        .found
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match found {
        Some(Ok(der)) => Ok(pem_of(&der)),
        Some(Err(())) => Err(CaError::Certificate(format!(
            "the server at {addr} presented no CA certificate matching the token's digest: \
             check the address and the token (is it this cluster's, and a swarm manager?)"
        ))),
        None => Err(CaError::Certificate(format!(
            "the manager at {addr} did not present a certificate"
        ))),
    }
}

/// The verifier of [`fetch_root_ca`]: it records the CA certificate whose
/// digest matches, and refuses the connection either way.
#[derive(Debug)]
struct Capture {
    digest: String,
    /// `Ok(der)`: the CA; `Err`: certificates came, none of them it.
    found: Mutex<Option<Result<Vec<u8>, ()>>>,
    schemes: Vec<rustls::SignatureScheme>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|c| ca::digest_of(c.as_ref()) == self.digest);
        *self
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(ca.map(|c| c.as_ref().to_vec()).ok_or(()));
        Err(rustls::Error::General(
            "only the CA certificate was wanted".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not used".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}

/// A DER certificate as PEM.
fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{NODE_CERT_VALIDITY, NodeKey, RootCa};
    use swarm_core::model::NodeRole;

    fn credentials(ca: &RootCa, node: &str) -> Credentials {
        let key = NodeKey::generate().unwrap();
        let cert = ca
            .issue(
                &key.csr_pem().unwrap(),
                &node.into(),
                NodeRole::Worker,
                NODE_CERT_VALIDITY,
            )
            .unwrap();
        Credentials::new(ca.cert_pem(), cert, key.key_pem()).unwrap()
    }

    #[test]
    fn credentials_are_replaced_as_one_set_even_across_a_crash() {
        let ca = RootCa::generate().unwrap();
        let root = tempfile_dir();
        let dir = root.join("certificates");
        let first = credentials(&ca, "n1");
        first.save(&dir).unwrap();
        assert_eq!(Credentials::load(&dir).unwrap(), first);
        let second = credentials(&ca, "n1");
        second.save(&dir).unwrap();
        assert_eq!(Credentials::load(&dir).unwrap(), second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A crash between the renames: the old set moved aside, the new
        // one staged. Readers get the new set; the owner's recovery
        // finishes the swap.
        let third = credentials(&ca, "n1");
        third.save(&sibling(&dir, "new")).unwrap();
        std::fs::rename(&dir, sibling(&dir, "old")).unwrap();
        assert_eq!(Credentials::load(&dir).unwrap(), third);
        assert!(!dir.exists(), "a reader renames nothing");
        Credentials::recover(&dir).unwrap();
        assert_eq!(Credentials::load(&dir).unwrap(), third);
        let _ = std::fs::remove_dir_all(&root);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "swarm-tls-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
