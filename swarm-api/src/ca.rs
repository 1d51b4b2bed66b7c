//! The cluster's certificate authority and its join tokens.
//!
//! - `init` creates a [`RootCa`]: an ECDSA P-256 key and a self-signed CA
//!   certificate, kept by the managers.
//! - A [`JoinToken`] is `SWMTKN-1-<digest>-<secret>`, as in Docker: the
//!   digest (SHA-256 of the CA certificate, base 36) lets a joining node
//!   check that it talks to the right cluster before it trusts anything;
//!   the secret proves that it may join. There is one token per role, and
//!   rotating one changes its secret only.
//! - A joining node makes its own key and sends a certificate signing
//!   request ([`NodeKey`]); the CA answers with a certificate whose
//!   subject names the node (CN = node id) and its role (OU). From then
//!   on, the peer certificate of each connection says who calls
//!   ([`identity_of`]).
//!
//! This module is pure: no I/O and no transport. The gRPC services use it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use swarm_core::Id;
use swarm_core::model::NodeRole;

/// What went wrong with a certificate or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// The token is not `SWMTKN-1-<digest>-<secret>`.
    #[error("malformed join token: {0}")]
    MalformedToken(String),
    /// The token's CA digest is not this cluster's CA.
    #[error(
        "the join token is for another cluster (its CA digest does not match): get a token from this cluster with `swarmctl swarm join-token`"
    )]
    WrongCluster,
    /// The token's secret is wrong, or was rotated.
    #[error(
        "the join token is not valid (wrong or rotated): get a current one with `swarmctl swarm join-token`"
    )]
    InvalidToken,
    /// A certificate, key or request could not be made or read.
    #[error("certificate error: {0}")]
    Certificate(String),
}

fn cert_err(e: impl fmt::Display) -> CaError {
    CaError::Certificate(e.to_string())
}

/// How long the root CA certificate is valid (Docker: 20 years).
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Node certificates (Docker: 90 days); they are renewed well before.
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The OU of a manager's certificate.
pub const MANAGER_OU: &str = "swarm-manager";
/// The OU of a worker's certificate.
pub const WORKER_OU: &str = "swarm-worker";
/// The OU of a client (CLI) certificate: it may call the control API and
/// nothing else.
pub const CLIENT_OU: &str = "swarm-client";
/// The DNS name every manager's certificate carries, and the name clients
/// check when they connect to a manager (as Docker checks
/// `swarm-manager`): a worker's certificate cannot pose as a manager.
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

/// How far back a certificate's validity starts, for clocks that
/// disagree: a certificate was issued this long after its `not_before`.
pub const CLOCK_SLACK: Duration = Duration::from_secs(300);

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SLACK;
    params.not_after =
        now + time::Duration::seconds(i64::try_from(valid_for.as_secs()).unwrap_or(i64::MAX / 2));
}

/// The cluster's root certificate authority.
pub struct RootCa {
    cert_pem: String,
    key_pem: String,
    digest: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl RootCa {
    /// A new CA for a cluster: an ECDSA P-256 key and a self-signed
    /// certificate valid for 20 years.
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "swarm-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Self::load(&cert.pem(), &key.serialize_pem())
    }

    /// The CA kept in a manager's data directory.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(cert_err)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(cert_err)?;
        let der = cert_der(cert_pem)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            digest: digest_of(&der),
            issuer,
        })
    }

    /// The CA certificate (PEM): what every node trusts.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key (PEM): managers only, never sent to a worker.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The digest that join tokens carry.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Signs a node's certificate request: the certificate names `node`
    /// (CN) and its `role` (OU), serves as client and server, and is valid
    /// for `valid_for`. What the request itself asks for is ignored but its
    /// key.
    pub fn issue(
        &self,
        csr_pem: &str,
        node: &Id,
        role: NodeRole,
        valid_for: Duration,
    ) -> Result<String, CaError> {
        let (ou, names) = match role {
            NodeRole::Manager => (
                MANAGER_OU,
                vec![node.to_string(), MANAGER_SERVER_NAME.to_string()],
            ),
            NodeRole::Worker => (WORKER_OU, vec![node.to_string()]),
        };
        self.sign(csr_pem, node.as_str(), ou, names, valid_for)
    }

    /// Signs the certificate request of a manager's Engine API server
    /// (`swarmd --engine-addr`): CN `node`, OU manager, server and client
    /// authentication, and `names` as its subject names: host names, and
    /// IP addresses as IP names, which the docker client checks against
    /// `DOCKER_HOST`.
    pub fn issue_engine(
        &self,
        csr_pem: &str,
        node: &Id,
        names: Vec<String>,
        valid_for: Duration,
    ) -> Result<String, CaError> {
        if names.is_empty() {
            return Err(CaError::Certificate(
                "an Engine API certificate needs at least one host name or address".into(),
            ));
        }
        self.sign(csr_pem, node.as_str(), MANAGER_OU, names, valid_for)
    }

    /// Signs a client's certificate request (the CLI's): CN `name`, OU
    /// [`CLIENT_OU`], client authentication only.
    pub fn issue_client(
        &self,
        csr_pem: &str,
        name: &str,
        valid_for: Duration,
    ) -> Result<String, CaError> {
        self.sign(csr_pem, name, CLIENT_OU, Vec::new(), valid_for)
    }

    fn sign(
        &self,
        csr_pem: &str,
        cn: &str,
        ou: &str,
        names: Vec<String>,
        valid_for: Duration,
    ) -> Result<String, CaError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(cert_err)?;
        let server = !names.is_empty();
        let mut params = CertificateParams::new(names).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationalUnitName, ou);
        dn.push(DnType::OrganizationName, self.digest.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, valid_for);
        csr.params = params;
        Ok(csr.signed_by(&self.issuer).map_err(cert_err)?.pem())
    }

    /// A new token for `role`s to join with.
    #[must_use]
    pub fn new_token(&self) -> JoinToken {
        JoinToken {
            ca_digest: self.digest.clone(),
            secret: random_secret(),
        }
    }

    /// Checks a presented token against the current one for its role.
    /// Compares the secrets in constant time.
    pub fn check_token(&self, presented: &str, current: &JoinToken) -> Result<(), CaError> {
        let token: JoinToken = presented.parse()?;
        if token.ca_digest != self.digest {
            return Err(CaError::WrongCluster);
        }
        let (a, b) = (token.secret.as_bytes(), current.secret.as_bytes());
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same {
            Ok(())
        } else {
            Err(CaError::InvalidToken)
        }
    }
}

/// The DER of a PEM certificate.
pub fn cert_der(pem: &str) -> Result<Vec<u8>, CaError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(cert_err)?;
    Ok(parsed.contents)
}

/// SHA-256 of a certificate, in base 36 (50 characters), as Docker
/// writes it in join tokens.
#[must_use]
pub fn digest_of(cert_der: &[u8]) -> String {
    let hash = Sha256::digest(cert_der);
    let s = base36(&hash);
    format!("{s:0>50}")
}

fn base36(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in &mut n {
            let cur = (rem << 8) | u32::from(*b);
            *b = u8::try_from(cur / 36).expect("below 256");
            rem = cur % 36;
        }
        out.push(DIGITS[rem as usize]);
    }
    if out.is_empty() {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

fn random_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    let s = base36(&bytes);
    format!("{s:0>25}")
}

/// A join token: `SWMTKN-1-<CA digest>-<secret>`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinToken {
    /// The digest of the cluster's CA certificate.
    pub ca_digest: String,
    /// The secret that admits a node.
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SWMTKN-1-{}-{}", self.ca_digest, self.secret)
    }
}

impl FromStr for JoinToken {
    type Err = CaError;

    fn from_str(s: &str) -> Result<Self, CaError> {
        let rest = s
            .trim()
            .strip_prefix("SWMTKN-1-")
            .ok_or_else(|| CaError::MalformedToken("it should start with SWMTKN-1-".into()))?;
        let (digest, secret) = rest
            .split_once('-')
            .ok_or_else(|| CaError::MalformedToken("expected SWMTKN-1-<digest>-<secret>".into()))?;
        let alnum = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        };
        if digest.len() != 50 || !alnum(digest) {
            return Err(CaError::MalformedToken(
                "the CA digest should be 50 base-36 characters".into(),
            ));
        }
        if secret.len() != 25 || !alnum(secret) {
            return Err(CaError::MalformedToken(
                "the secret should be 25 base-36 characters".into(),
            ));
        }
        Ok(Self {
            ca_digest: digest.into(),
            secret: secret.into(),
        })
    }
}

/// A node's own key and its certificate request: the key never leaves
/// the node.
pub struct NodeKey {
    key: KeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey").finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A new ECDSA P-256 key.
    pub fn generate() -> Result<Self, CaError> {
        Ok(Self {
            key: KeyPair::generate().map_err(cert_err)?,
        })
    }

    /// The key kept in a node's data directory.
    pub fn load(key_pem: &str) -> Result<Self, CaError> {
        Ok(Self {
            key: KeyPair::from_pem(key_pem).map_err(cert_err)?,
        })
    }

    /// The key (PEM), to keep in the node's data directory.
    #[must_use]
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate signing request for this key (PEM).
    pub fn csr_pem(&self) -> Result<String, CaError> {
        CertificateParams::default()
            .serialize_request(&self.key)
            .map_err(cert_err)?
            .pem()
            .map_err(cert_err)
    }
}

/// What a certificate allows its holder to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PeerRole {
    /// A manager: raft, the dispatcher and the control API.
    Manager,
    /// A worker: the dispatcher only, for itself.
    Worker,
    /// A client such as `swarmctl`: the control API only.
    Client,
}

impl From<NodeRole> for PeerRole {
    fn from(role: NodeRole) -> Self {
        match role {
            NodeRole::Manager => Self::Manager,
            NodeRole::Worker => Self::Worker,
        }
    }
}

/// Who a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The node's id, or the client's name (CN).
    pub node_id: Id,
    /// Its role (OU).
    pub role: PeerRole,
    /// When the certificate expires.
    pub not_after: std::time::SystemTime,
    /// When it became valid.
    pub not_before: std::time::SystemTime,
}

/// The identity in a node certificate (DER, as a TLS peer presents it).
/// The certificate must have been verified against the CA by the TLS
/// layer; this only reads it.
pub fn identity_of(cert_der: &[u8]) -> Result<Identity, CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(cert_err)?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| CaError::Certificate("the certificate names no node (no CN)".into()))?;
    let ou = subject
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| CaError::Certificate("the certificate names no role (no OU)".into()))?;
    let role = match ou {
        MANAGER_OU => PeerRole::Manager,
        WORKER_OU => PeerRole::Worker,
        CLIENT_OU => PeerRole::Client,
        other => {
            return Err(CaError::Certificate(format!(
                "unknown role {other:?} in the certificate"
            )));
        }
    };
    let at = |t: x509_parser::time::ASN1Time| {
        std::time::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or_default())
    };
    let validity = cert.validity();
    Ok(Identity {
        node_id: cn.into(),
        role,
        not_after: at(validity.not_after),
        not_before: at(validity.not_before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_checks_cluster_and_secret() {
        let ca = RootCa::generate().unwrap();
        let token = ca.new_token();
        let text = token.to_string();
        assert!(text.starts_with("SWMTKN-1-"));
        assert_eq!(text.len(), "SWMTKN-1-".len() + 50 + 1 + 25);
        assert_eq!(text.parse::<JoinToken>().unwrap(), token);
        ca.check_token(&text, &token).unwrap();

        // A rotated token no longer admits.
        let rotated = ca.new_token();
        assert_eq!(ca.check_token(&text, &rotated), Err(CaError::InvalidToken));
        // A token of another cluster is told apart by its digest.
        let other = RootCa::generate().unwrap();
        let foreign = other.new_token().to_string();
        assert_eq!(ca.check_token(&foreign, &token), Err(CaError::WrongCluster));
        // Garbage says what is wrong.
        let e = ca.check_token("SWMTKN-2-abc", &token).unwrap_err();
        assert!(e.to_string().contains("SWMTKN-1-"), "{e}");
    }

    #[test]
    fn an_engine_certificate_names_its_hosts_and_addresses() {
        let ca = RootCa::generate().unwrap();
        let key = NodeKey::generate().unwrap();
        let id: Id = "n0de1d".into();
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let pem = ca
            .issue_engine(&key.csr_pem().unwrap(), &id, names, NODE_CERT_VALIDITY)
            .unwrap();
        let der = cert_der(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let shown: Vec<String> = san.general_names.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "DNSName(localhost)",
                "IPAddress(7f:00:00:01)",
                "IPAddress(00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01)"
            ],
            "{shown:?}"
        );
        assert_eq!(identity_of(&der).unwrap().role, PeerRole::Manager);
        let e = ca
            .issue_engine(&key.csr_pem().unwrap(), &id, Vec::new(), NODE_CERT_VALIDITY)
            .unwrap_err();
        assert!(e.to_string().contains("at least one host name"), "{e}");
    }

    #[test]
    fn a_node_certificate_names_the_node_and_its_role() {
        let ca = RootCa::generate().unwrap();
        let node = NodeKey::generate().unwrap();
        let id: Id = "n0de1d".into();
        let pem = ca
            .issue(
                &node.csr_pem().unwrap(),
                &id,
                NodeRole::Worker,
                NODE_CERT_VALIDITY,
            )
            .unwrap();
        let who = identity_of(&cert_der(&pem).unwrap()).unwrap();
        assert_eq!((who.node_id, who.role), (id, PeerRole::Worker));
        let left = who
            .not_after
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(left > NODE_CERT_VALIDITY - Duration::from_secs(60));
        // A client certificate is a client's, whatever its name.
        let client = ca
            .issue_client(&node.csr_pem().unwrap(), "swarmctl", NODE_CERT_VALIDITY)
            .unwrap();
        let who = identity_of(&cert_der(&client).unwrap()).unwrap();
        assert_eq!(who.role, PeerRole::Client);
        // The CA reloads from its PEM files with the same digest.
        let again = RootCa::load(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(again.digest(), ca.digest());
    }

    #[test]
    fn a_certificate_from_another_ca_is_signed_by_that_ca() {
        use x509_parser::prelude::*;
        let ca = RootCa::generate().unwrap();
        let other = RootCa::generate().unwrap();
        let node = NodeKey::generate().unwrap();
        let pem = other
            .issue(
                &node.csr_pem().unwrap(),
                &"x".into(),
                NodeRole::Manager,
                NODE_CERT_VALIDITY,
            )
            .unwrap();
        let der = cert_der(&pem).unwrap();
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let ca_der = cert_der(ca.cert_pem()).unwrap();
        let (_, ca_cert) = parse_x509_certificate(&ca_der).unwrap();
        let other_der = cert_der(other.cert_pem()).unwrap();
        let (_, other_cert) = parse_x509_certificate(&other_der).unwrap();
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_err());
        assert!(cert.verify_signature(Some(other_cert.public_key())).is_ok());
    }

    #[test]
    fn base36_digests_are_fixed_length() {
        assert_eq!(base36(&[0, 0]), "0");
        assert_eq!(base36(&[1, 0]), "74");
        assert_eq!(digest_of(b"x").len(), 50);
    }
}
