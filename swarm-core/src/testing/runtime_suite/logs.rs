//! Log checks: order, source, timestamps, tail, follow.

use std::time::{Duration, SystemTime};

use futures::StreamExt;

use crate::runtime::{LogLine, LogOptions, LogSource, Runtime};

use super::{CALL, RuntimeFixtures, cleanup, history, ok, run, task, texts, wait, within};

pub(super) async fn logs_keep_order_source_and_tail(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let before = SystemTime::now() - Duration::from_secs(1);
    let id = run(
        runtime,
        fixtures.shell("echo out-1; echo err-1 >&2; echo out-2; echo out-3"),
        &[],
    )
    .await;
    wait(runtime, &id).await;
    let after = SystemTime::now() + Duration::from_secs(1);

    let all = history(runtime, &id, None).await;
    assert_eq!(
        texts(&all, LogSource::Stdout),
        ["out-1", "out-2", "out-3"],
        "runtime suite: logs must hold the task's stdout lines, in order, marked Stdout"
    );
    assert_eq!(
        texts(&all, LogSource::Stderr),
        ["err-1"],
        "runtime suite: logs must hold the task's stderr line, marked Stderr"
    );
    assert_eq!(
        all.len(),
        4,
        "runtime suite: logs must hold exactly the lines printed: {all:?}"
    );
    for source in [LogSource::Stdout, LogSource::Stderr] {
        let stamps: Vec<_> = all
            .iter()
            .filter(|l| l.source == source)
            .map(|l| l.timestamp)
            .collect();
        assert!(
            stamps.iter().all(|t| *t >= before && *t <= after),
            "runtime suite: log timestamps must be when the lines were printed: {all:?}"
        );
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "runtime suite: log timestamps must not go backwards within a stream: {all:?}"
        );
    }

    let last = history(runtime, &id, Some(1)).await;
    assert_eq!(
        last.as_slice(),
        &all[3..],
        "runtime suite: logs with tail 1 must give only the last line"
    );
    let two = history(runtime, &id, Some(2)).await;
    assert_eq!(
        two.as_slice(),
        &all[2..],
        "runtime suite: logs with tail 2 must give the last two lines"
    );
    let more = history(runtime, &id, Some(100)).await;
    assert_eq!(
        more, all,
        "runtime suite: a tail longer than the history must give all of it"
    );
    cleanup(runtime, &id).await;
}

pub(super) async fn follow_gets_every_line_and_ends_on_exit(
    runtime: &impl Runtime,
    fixtures: &dyn RuntimeFixtures,
) {
    let task = task(fixtures.shell("echo one; sleep 1; echo two; echo three >&2; echo four"));
    let id = task.meta.id.clone();
    ok("prepare", runtime.prepare(&task, &[])).await;
    ok("start", runtime.start(&id)).await;
    // Opened while the task sleeps: "one" comes from the history, the rest
    // live. No line may fall between the two.
    let stream = ok(
        "logs with follow",
        runtime.logs(
            &id,
            LogOptions {
                follow: true,
                tail: None,
            },
        ),
    )
    .await;
    let lines: Vec<LogLine> = within(
        Duration::from_secs(10),
        "a follow stream (it must end when the task exits)",
        stream.collect(),
    )
    .await;
    assert_eq!(
        texts(&lines, LogSource::Stdout),
        ["one", "two", "four"],
        "runtime suite: a follow stream must give every stdout line, from history and live, in order"
    );
    assert_eq!(
        texts(&lines, LogSource::Stderr),
        ["three"],
        "runtime suite: a follow stream must give the stderr lines too"
    );
    let status = within(
        Duration::from_secs(2),
        "wait after the follow stream ended (the task has exited)",
        runtime.wait(&id),
    )
    .await
    .unwrap_or_else(|e| panic!("runtime suite: wait failed: {e}"));
    assert!(
        status.success(),
        "runtime suite: the follow task must exit 0, got {status:?}"
    );

    // Following an exited task gives its history and ends.
    let stream = ok(
        "logs with follow",
        runtime.logs(
            &id,
            LogOptions {
                follow: true,
                tail: Some(1),
            },
        ),
    )
    .await;
    let tail: Vec<LogLine> = within(
        CALL,
        "a follow stream of an exited task (it must end at once)",
        stream.collect(),
    )
    .await;
    assert_eq!(
        tail.len(),
        1,
        "runtime suite: follow with tail 1 of an exited task gives one line"
    );
    cleanup(runtime, &id).await;
}
