//! A manager's gRPC server: every service on one port over mutual TLS,
//! restarted on the same listener when the certificate is renewed.

use std::sync::Arc;
use std::time::Duration;

use swarm_api::ca::PeerRole;
use swarm_api::logs::{LogBroker, LogsService};
use swarm_api::membership::MembershipService;
use swarm_api::tls::RequireRole;
use swarm_api::{ControlService, DispatcherService};
use swarm_core::control::Control;
use swarm_core::dispatcher::LocalDispatcher;
use swarm_core::store::ReplicatedStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::Error;
use crate::authority::{self, Authority};
use crate::dispatch::LeaderDispatcher;
use crate::node::SharedCreds;
use crate::provider::StoreProvider;

/// True while `store` leads and its state holds every committed write
/// (checked with a linearizable read at the start of each term).
pub(crate) fn caught_up_leadership<S: ReplicatedStore>(
    store: &S,
    stop: CancellationToken,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let mut leadership = store.leadership();
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                r = leadership.wait_for(|l| *l) => if r.is_err() { return },
            }
            // Until the read succeeds, or the term ends.
            while *leadership.borrow() && !stop.is_cancelled() {
                match store.state_linearizable().await {
                    Ok(_) => {
                        tx.send_replace(true);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "leading, not caught up yet");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                r = leadership.wait_for(|l| !*l) => if r.is_err() { return },
            }
            tx.send_replace(false);
        }
    });
    rx
}

/// What a manager serves, on one port over mutual TLS.
pub(crate) struct Services<P: StoreProvider> {
    pub(crate) provider: Arc<P>,
    pub(crate) store: P::Store,
    /// Outlives server restarts: workers' subscriptions stay with it.
    pub(crate) logs: Arc<LogBroker>,
    pub(crate) leading: watch::Receiver<bool>,
    pub(crate) local: Arc<LocalDispatcher<P::Store>>,
    pub(crate) cert_validity: Duration,
    pub(crate) creds: SharedCreds,
}

impl<P: StoreProvider> Services<P> {
    /// The server with the node's current certificate.
    fn router(&self) -> Result<tonic::transport::server::Router, Error> {
        let creds = crate::node::server_creds(&self.creds)?;
        let store = &self.store;
        let router = Server::builder()
            .tls_config(creds.server_tls())
            .map_err(|e| Error::Config(format!("TLS settings: {e}")))?
            .add_service(InterceptedService::new(
                DispatcherService::server(
                    LeaderDispatcher::new(self.local.clone(), self.leading.clone())
                        .with_roster(authority::arc_roster(store.clone())),
                ),
                RequireRole::new("dispatcher", &[PeerRole::Manager, PeerRole::Worker]),
            ));
        Ok(self
            .provider
            .serve(store, router)
            .add_service(InterceptedService::new(
                ControlService::with_roster(
                    Control::new(store.clone()).with_routes(swarm_net::host_routes()),
                    authority::arc_roster(store.clone()),
                ),
                RequireRole::new("control", &[PeerRole::Manager, PeerRole::Client]),
            ))
            .add_service(MembershipService::server(Authority::new(
                store.clone(),
                self.cert_validity,
            )))
            .add_service(LogsService::server(
                self.logs.clone(),
                Control::new(store.clone()),
                self.leading.clone(),
                Some(authority::arc_roster(store.clone())),
            )))
    }
}

/// Serves `services` on `listener` until `stop`. Each `reload` starts a
/// server with the current certificate; the previous one stops accepting
/// and ends with its last connection. On `stop`, servers get 2 s to
/// finish.
pub(crate) async fn serve<P: StoreProvider>(
    listener: Arc<tokio::net::TcpListener>,
    services: Services<P>,
    mut reload: watch::Receiver<()>,
    stop: CancellationToken,
) {
    let mut servers = tokio::task::JoinSet::new();
    let mut running = Vec::new();
    loop {
        let router = match services.router() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the manager cannot serve");
                break;
            }
        };
        let listener = listener.clone();
        // Accepted streams, with Nagle off: the builder's setting does not
        // reach a custom incoming.
        let incoming = futures::stream::unfold(listener, |l| async move {
            let accepted = l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                s
            });
            Some((accepted, l))
        });
        let this = stop.child_token();
        running.push(this.clone());
        let done = this.clone();
        servers.spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, done.cancelled())
                .await
            {
                tracing::error!(error = %e, "the manager's server stopped");
            }
        });
        tokio::select! {
            () = stop.cancelled() => break,
            changed = reload.changed() => {
                this.cancel();
                if changed.is_err() {
                    break;
                }
                tracing::info!("serving with the renewed certificate");
            }
        }
    }
    for server in running {
        server.cancel();
    }
    if tokio::time::timeout(Duration::from_secs(2), async {
        while servers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        servers.abort_all();
    }
}
