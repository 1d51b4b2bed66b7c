//! The Engine API on TCP with mutual TLS from the cluster CA (`swarmd
//! --engine-addr`), for `DOCKER_HOST=tcp://HOST:PORT DOCKER_TLS_VERIFY=1
//! DOCKER_CERT_PATH=<a manager's data-dir>/client docker node ls`.
//!
//! A manager's node certificate names no address, and the docker client
//! checks the daemon's certificate against the host of `DOCKER_HOST`; so
//! [`EngineTls`] has the cluster CA sign a server certificate for the
//! listener's names as soon as the daemon's node is a manager (it holds
//! the CA), and drops it when the node stops being one. Clients show a
//! certificate of the same CA: a manager's client certificate
//! (`<data-dir>/client`, which has Docker's `ca.pem`, `cert.pem`,
//! `key.pem`) or a manager's own; a worker's is refused with a 403 that
//! says so.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use swarm_api::ca::{self, NodeKey, PeerRole};
use swarm_core::Id;
use swarm_core::store::ReplicatedStore;
use swarm_engine::tls::{Authorize, rustls::ServerConfig};
use tokio::sync::watch;

use crate::engine::Daemon;

/// A server certificate is made again after this long (it is valid for
/// [`ca::NODE_CERT_VALIDITY`]).
const REISSUE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// The TLS settings of a daemon's Engine API listener, following its
/// node's role.
pub struct EngineTls {
    names: Vec<String>,
    /// Where the certificate is kept for a restart that finds the manager
    /// locked (its CA is in the locked store until `docker swarm unlock`,
    /// which may come over this listener).
    saved: PathBuf,
    configs: watch::Sender<Option<Arc<ServerConfig>>>,
    /// The node the current certificate was made for, and when.
    issued: Mutex<Option<(Id, Instant)>>,
}

impl EngineTls {
    /// Settings for a listener that clients reach by `names` (host names
    /// and IP addresses), keeping its certificate in the directory `saved`
    /// (`ca.pem`, `cert.pem`, `key.pem` of mode 0600); the receiver is
    /// what [`swarm_engine::tls::TlsListener::new`] takes.
    #[must_use]
    pub fn new(
        names: Vec<String>,
        saved: PathBuf,
    ) -> (Self, watch::Receiver<Option<Arc<ServerConfig>>>) {
        let (configs, rx) = watch::channel(None);
        (
            Self {
                names,
                saved,
                configs,
                issued: Mutex::new(None),
            },
            rx,
        )
    }

    /// Makes the certificate once `daemon`'s node is a manager (or a new
    /// one, for another node or when it is getting old), and drops it when
    /// the node is no manager.
    ///
    /// # Errors
    /// If the CA cannot be read from the store or cannot sign.
    pub async fn refresh<S: ReplicatedStore>(&self, daemon: &Daemon<S>) -> Result<(), String> {
        let Some((node, addr, store)) = daemon.manager_store() else {
            // A locked manager keeps its certificate, or takes the one it
            // saved: `docker swarm unlock` may come over this listener.
            if daemon.is_locked() {
                if self.configs.borrow().is_none() {
                    self.serve_saved()?;
                }
                return Ok(());
            }
            let had = self.lock().take().is_some();
            if had || self.configs.borrow().is_some() {
                self.configs.send_replace(None);
                tracing::info!("the Engine API's TLS stops: this daemon is no manager now");
            }
            if self.saved.exists() {
                std::fs::remove_dir_all(&self.saved)
                    .map_err(|e| format!("{}: {e}", self.saved.display()))?;
            }
            return Ok(());
        };
        let current = self
            .lock()
            .as_ref()
            .is_some_and(|(id, at)| *id == node && at.elapsed() < REISSUE_AFTER);
        if current {
            return Ok(());
        }
        let cluster = swarm_api::bootstrap::load(&store)
            .await
            .map_err(|e| format!("the cluster CA: {e}"))?;
        let key = NodeKey::generate().map_err(|e| e.to_string())?;
        let csr = key.csr_pem().map_err(|e| e.to_string())?;
        let mut names = self.names.clone();
        // The advertised address is an IP, or IP:PORT.
        let ip = addr
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()));
        if let Some(ip) = ip.map(|ip| ip.to_string())
            && !names.contains(&ip)
        {
            names.push(ip);
        }
        let cert = cluster
            .ca
            .issue_engine(&csr, &node, names.clone(), ca::NODE_CERT_VALIDITY)
            .map_err(|e| e.to_string())?;
        let config =
            swarm_engine::tls::server_config(cluster.ca.cert_pem(), &cert, &key.key_pem())?;
        self.configs.send_replace(Some(config));
        let kept = swarm_api::tls::Credentials::new(cluster.ca.cert_pem(), cert, key.key_pem())
            .map_err(|e| e.to_string())
            .and_then(|c| c.save(&self.saved).map_err(|e| e.to_string()));
        if let Err(e) = kept {
            tracing::warn!(
                error = %e,
                dir = %self.saved.display(),
                "the Engine API's certificate is not kept: after a restart that finds this manager \
                 locked, unlock it over the unix socket"
            );
        }
        *self.lock() = Some((node, Instant::now()));
        tracing::info!(
            ?names,
            "the Engine API serves TLS with a certificate from the cluster CA"
        );
        Ok(())
    }

    /// Serves the certificate kept by an earlier run, if there is one.
    fn serve_saved(&self) -> Result<(), String> {
        // A save that a crash cut short is finished first.
        swarm_api::tls::Credentials::recover(&self.saved)
            .map_err(|e| format!("{}: {e}", self.saved.display()))?;
        if !self.saved.exists() {
            return Ok(());
        }
        let kept = swarm_api::tls::Credentials::load(&self.saved)
            .map_err(|e| format!("the kept Engine API certificate: {e}"))?;
        let config =
            swarm_engine::tls::server_config(kept.ca_pem(), kept.cert_pem(), kept.key_pem())?;
        self.configs.send_replace(Some(config));
        tracing::info!(
            "the Engine API serves TLS with the certificate kept from the last run, until this \
             locked manager is unlocked"
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Id, Instant)>> {
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lets in clients and managers of the cluster; refuses workers, whose
/// certificates may not drive the swarm (as swarmkit's control API).
#[must_use]
pub fn managers_and_clients() -> Authorize {
    Arc::new(|cert: &[u8]| match ca::identity_of(cert) {
        Ok(who) if matches!(who.role, PeerRole::Client | PeerRole::Manager) => Ok(()),
        Ok(who) => Err(format!(
            "the certificate of worker {} may not drive the swarm: use a manager's client \
             certificate (DOCKER_CERT_PATH=<data-dir>/client on a manager)",
            who.node_id
        )),
        Err(e) => Err(format!(
            "the client certificate names no member of this swarm ({e}): use a manager's \
             <data-dir>/client"
        )),
    })
}

/// The names a listener on `host` is reached by: `localhost` and the
/// loopback addresses, the machine's hostname, `host` unless it is a
/// wildcard. [`EngineTls`] adds the node's advertised address.
#[must_use]
pub fn listener_names(host: std::net::IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(h) = hostname() {
        names.push(h);
    }
    if !host.is_unspecified() {
        names.push(host.to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    names
}

fn hostname() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_owned())
}
