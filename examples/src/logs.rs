//! A service's logs from the leading manager, as `swarmctl service logs`
//! and the Engine API's `docker service logs` read them.

use anyhow::{anyhow, bail};
use futures::stream::BoxStream;
use swarm_api::logs::{LEADER_HEADER, LogItem, RemoteLogs, ServiceLogsRequest};
use swarm_api::tls::Credentials;

/// The logs `request` asks for, from the manager at `host` (`IP:PORT`), or
/// from the leader it names when it does not lead.
///
/// # Errors
/// If no manager leads, or the service is unknown.
pub async fn service_logs(
    creds: &Credentials,
    host: &str,
    request: ServiceLogsRequest,
) -> anyhow::Result<BoxStream<'static, LogItem>> {
    let mut host = host.to_owned();
    for _ in 0..2 {
        let channel = creds.endpoint(&host).map_err(|e| anyhow!(e))?;
        match RemoteLogs::with_channel(channel.connect_lazy())
            .service_logs(request.clone())
            .await
        {
            Ok(s) => return Ok(s),
            Err(status) => match status
                .metadata()
                .get(LEADER_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                Some(leader) if leader != host => host = leader.to_owned(),
                _ => bail!("{}", status.message()),
            },
        }
    }
    bail!("no manager leads: try again")
}
