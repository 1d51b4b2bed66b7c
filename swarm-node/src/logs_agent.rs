//! A node's side of task logs: it answers the leader's requests from its
//! runtime.

use std::sync::Arc;
use std::time::Duration;

use swarm_api::logs::{LogChunk, LogRequest, RemoteLogs};
use swarm_core::runtime::{LogOptions, Runtime};
use tokio_util::sync::CancellationToken;

use crate::dispatch::FailoverDispatcher;
use crate::node::SharedCreds;

/// Answers the leader's requests for this node's task logs: keeps a
/// subscription open to whichever manager leads, and publishes each
/// requested task's lines from the runtime.
pub(crate) async fn log_agent<R: Runtime>(
    runtime: Arc<R>,
    sessions: Arc<FailoverDispatcher>,
    creds: SharedCreds,
    stop: CancellationToken,
) {
    use futures::StreamExt;
    while !stop.is_cancelled() {
        let current = creds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut subscribed = None;
        for addr in sessions.managers() {
            let Some(endpoint) = current.as_ref().and_then(|c| c.endpoint(&addr).ok()) else {
                continue;
            };
            let remote = RemoteLogs::with_channel(endpoint.connect_lazy());
            if let Ok(requests) = remote.subscribe().await {
                subscribed = Some((remote, requests));
                break;
            }
        }
        let Some((remote, mut requests)) = subscribed else {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => continue,
            }
        };
        loop {
            let request = tokio::select! {
                () = stop.cancelled() => return,
                r = requests.next() => r,
            };
            let Some(request) = request else { break };
            let runtime = runtime.clone();
            let remote = remote.clone();
            let stop = stop.clone();
            tokio::spawn(answer_logs(runtime, remote, request, stop));
        }
    }
}

/// Publishes one task's logs, as `request` asks.
async fn answer_logs<R: Runtime>(
    runtime: Arc<R>,
    remote: RemoteLogs,
    request: LogRequest,
    stop: CancellationToken,
) {
    use futures::StreamExt;
    let id = request.id;
    let options = LogOptions {
        follow: request.follow,
        tail: request.tail,
    };
    let rest: futures::stream::BoxStream<'static, LogChunk> =
        match runtime.logs(&request.task_id, options).await {
            Ok(lines) => lines
                .ready_chunks(256)
                .map(move |lines| LogChunk {
                    request: id,
                    lines,
                    error: None,
                })
                .boxed(),
            Err(e) => futures::stream::iter([LogChunk {
                request: id,
                lines: Vec::new(),
                error: Some(e.to_string()),
            }])
            .boxed(),
        };
    // A first chunk, even empty, tells the manager the answer has begun
    // (and ends it, for a task with no lines).
    let first = LogChunk {
        request: id,
        lines: Vec::new(),
        error: None,
    };
    let chunks = futures::stream::iter([first])
        .chain(rest)
        .take_until(stop.cancelled_owned())
        .boxed();
    let _ = remote.publish(chunks).await;
}
