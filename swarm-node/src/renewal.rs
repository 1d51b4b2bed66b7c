//! Certificates renewed before they expire: the node's own, and a
//! manager's client certificate for `swarmctl`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use swarm_api::bootstrap;
use swarm_api::ca::NodeKey;
use swarm_api::membership::{Admitted, RemoteMembership};
use swarm_api::tls::Credentials;
use swarm_core::store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::config::{NodeConfig, NodeState};
use crate::dispatch::FailoverDispatcher;
use crate::node::{SharedCreds, save_creds};

/// Whether a certificate has a third or less of its validity left (or
/// cannot be read).
pub(crate) fn due(creds: &Credentials) -> bool {
    let Ok(who) = creds.identity() else {
        return true;
    };
    let issued = who.not_before + swarm_api::ca::CLOCK_SLACK;
    let total = who.not_after.duration_since(issued).unwrap_or_default();
    let left = who
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    left <= total / 3
}

/// What the renewal loop refreshes besides the node's own credentials.
pub(crate) struct Renewal<S> {
    pub(crate) config: NodeConfig,
    pub(crate) creds: SharedCreds,
    /// The worker sessions: new channels with the new certificate.
    pub(crate) sessions: Arc<FailoverDispatcher>,
    /// A manager: its store (for the client certificate) and the signal
    /// that makes its server take up the new certificate.
    pub(crate) manager: Option<(S, watch::Sender<()>)>,
}

impl<S: Store> Renewal<S> {
    /// Renews the node's certificate when a third of its validity
    /// remains, and a manager's client certificate likewise.
    pub(crate) async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.config.renew_check) => {}
            }
            if let Some((store, _)) = &self.manager
                && let Err(e) = ensure_client_certs(&self.config, store).await
            {
                tracing::warn!(error = %e, "cannot renew the client certificate");
            }
            let current = self
                .creds
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let Some(current) = current.filter(due) else {
                continue;
            };
            if let Err(e) = self.renew(&current).await {
                tracing::warn!(error = %e, "cannot renew the node certificate; retrying");
            }
        }
    }

    async fn renew(&self, current: &Credentials) -> Result<(), Error> {
        let Some(mut state) = NodeState::load(&self.config.data_dir)? else {
            return Ok(());
        };
        let (admitted, fresh) = renew(&state.managers, current).await?;
        if admitted.role != state.role {
            // The role is changing: the node takes it up with its own
            // certificate (see `Node::take_role`).
            return Ok(());
        }
        save_creds(&self.config, &fresh)?;
        *self
            .creds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh.clone());
        self.sessions.set_credentials(fresh)?;
        if let Some((_, reload)) = &self.manager {
            reload.send_replace(());
        }
        if !admitted.managers.is_empty() {
            state.managers = admitted.managers;
            state.save(&self.config.data_dir)?;
        }
        tracing::info!("renewed the node certificate");
        Ok(())
    }
}

/// Writes a client certificate for `swarmctl` into the manager's data
/// directory, unless a valid one is there; waits for the store to hold
/// the CA (a new manager catching up).
pub(crate) async fn ensure_client_certs(
    config: &NodeConfig,
    store: &impl Store,
) -> Result<(), Error> {
    let dir = config.client_certs_dir();
    if Credentials::load(&dir).is_ok_and(|c| !due(&c)) {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let ca = loop {
        match bootstrap::load(store).await {
            Ok(ca) => break ca,
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let key = NodeKey::generate()?;
    let cert = ca
        .ca
        .issue_client(&key.csr_pem()?, "swarmctl", config.cert_validity)?;
    let client = Credentials::new(ca.ca.cert_pem(), cert, key.key_pem())?;
    client.save(&dir).map_err(|e| {
        Error::Io(format!(
            "cannot write the client certificate into {}: {e}",
            dir.display()
        ))
    })
}

pub(crate) async fn renew(
    managers: &[String],
    current: &Credentials,
) -> Result<(Admitted, Credentials), Error> {
    let key = NodeKey::generate()?;
    let csr = key.csr_pem()?;
    let mut last = Error::Join("no manager is known".into());
    for addr in managers {
        let Ok(endpoint) = current.endpoint(addr) else {
            continue;
        };
        match RemoteMembership::with_channel(endpoint.connect_lazy())
            .renew(&csr)
            .await
        {
            Ok(a) => {
                let fresh = Credentials::new(a.ca_pem.clone(), a.cert_pem.clone(), key.key_pem())?;
                return Ok((a, fresh));
            }
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}
