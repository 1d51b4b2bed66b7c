//! A task's output: a bounded ring of lines that followers read by position.
//!
//! Every line gets a sequence number. The ring holds the newest lines; a
//! reader keeps a cursor (the number of the next line it wants) and a
//! `watch` channel wakes it when lines arrive or the log closes. History and
//! live lines come from the same ring through the same cursor, so no line
//! can fall between them, and a slow follower never makes the task wait. A
//! follower that falls further behind than the ring holds skips the lines
//! that were dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use futures::StreamExt;
use swarm_core::runtime::{LogLine, LogOptions, LogSource, LogStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

/// How many lines a follower takes from the ring per lock.
const BATCH: usize = 256;

/// The lines of one task, and the readers' wake-up signal.
#[derive(Debug)]
pub(crate) struct LogBuffer {
    ring: Mutex<Ring>,
    changed: watch::Sender<()>,
}

#[derive(Debug)]
struct Ring {
    lines: VecDeque<LogLine>,
    /// The sequence number of `lines[0]`.
    first: u64,
    capacity: usize,
    /// No more lines are expected: the task exited (or was removed).
    closed: bool,
}

impl Ring {
    fn next(&self) -> u64 {
        self.first + self.lines.len() as u64
    }

    /// Lines from sequence number `from` on, at most `max`; a cursor older
    /// than the ring starts at its oldest line.
    fn read(&self, from: u64, max: usize) -> (Vec<LogLine>, u64) {
        let from = from.max(self.first);
        let skip = usize::try_from(from - self.first).unwrap_or(usize::MAX);
        let lines: Vec<LogLine> = self.lines.iter().skip(skip).take(max).cloned().collect();
        let next = from + lines.len() as u64;
        (lines, next)
    }
}

impl LogBuffer {
    /// An empty log keeping the newest `capacity` lines.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                lines: VecDeque::new(),
                first: 0,
                capacity: capacity.max(1),
                closed: false,
            }),
            changed: watch::Sender::new(()),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent.
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a line, read now.
    pub(crate) fn push(&self, source: LogSource, line: String) {
        {
            let mut ring = self.ring();
            if ring.lines.len() == ring.capacity {
                ring.lines.pop_front();
                ring.first += 1;
            }
            ring.lines.push_back(LogLine {
                timestamp: SystemTime::now(),
                source,
                line,
            });
        }
        self.changed.send_replace(());
    }

    /// Marks the log finished: followers end once they have read it all.
    /// Lines pushed later (by a straggler holding the pipe) are kept but
    /// not followed.
    pub(crate) fn close(&self) {
        self.ring().closed = true;
        self.changed.send_replace(());
    }

    /// The history (the last `tail` lines, or all), then, with `follow`,
    /// every new line until the log closes.
    pub(crate) fn stream(self: &Arc<Self>, options: LogOptions) -> LogStream {
        let (start, end) = {
            let ring = self.ring();
            let next = ring.next();
            let held = ring.lines.len() as u64;
            let back = options.tail.map_or(held, |t| (t as u64).min(held));
            (next - back, next)
        };
        if !options.follow {
            let (lines, _) = self
                .ring()
                .read(start, usize::try_from(end - start).unwrap_or(0));
            return futures::stream::iter(lines).boxed();
        }
        let follower = Follower {
            buffer: Arc::clone(self),
            changed: self.changed.subscribe(),
            cursor: start,
            pending: VecDeque::new(),
        };
        futures::stream::unfold(follower, Follower::next).boxed()
    }
}

/// The state of a follow stream.
struct Follower {
    buffer: Arc<LogBuffer>,
    changed: watch::Receiver<()>,
    cursor: u64,
    pending: VecDeque<LogLine>,
}

impl Follower {
    async fn next(mut self) -> Option<(LogLine, Self)> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some((line, self));
            }
            // Mark the signal seen before reading: a line pushed after the
            // read below wakes `changed()`.
            self.changed.borrow_and_update();
            let closed = {
                let ring = self.buffer.ring();
                let (lines, next) = ring.read(self.cursor, BATCH);
                self.cursor = next;
                self.pending.extend(lines);
                ring.closed
            };
            if !self.pending.is_empty() {
                continue;
            }
            if closed || self.changed.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// Reads `reader` line by line into `buffer` until end of file. Lines are
/// decoded lossily as UTF-8, lose their `\n`, and are split every
/// `max_line_bytes` bytes; a last line without a newline is kept.
pub(crate) async fn pump(
    reader: impl AsyncRead + Unpin,
    source: LogSource,
    buffer: Arc<LogBuffer>,
    max_line_bytes: usize,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let emit = |line: &mut Vec<u8>| {
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        buffer.push(source, String::from_utf8_lossy(line).into_owned());
        line.clear();
    };
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!(?source, error = %e, "failed to read task output");
                break;
            }
        };
        // A full line may still be followed by its own newline.
        let room = max_line_bytes.saturating_sub(line.len()).max(1);
        let window = &chunk[..chunk.len().min(room + 1)];
        let (take, complete) = match window.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => {
                let take = window.len().min(room);
                (take, line.len() + take >= max_line_bytes)
            }
        };
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if complete {
            emit(&mut line);
        }
    }
    if !line.is_empty() {
        emit(&mut line);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.line.as_str()).collect()
    }

    #[tokio::test]
    async fn ring_keeps_the_newest_lines_and_tail_counts_from_the_end() {
        let buffer = Arc::new(LogBuffer::new(3));
        for i in 0..5 {
            buffer.push(LogSource::Stdout, format!("l{i}"));
        }
        let all: Vec<_> = buffer.stream(LogOptions::default()).collect().await;
        assert_eq!(texts(&all), ["l2", "l3", "l4"]);
        let tail: Vec<_> = buffer
            .stream(LogOptions {
                follow: false,
                tail: Some(2),
            })
            .collect()
            .await;
        assert_eq!(texts(&tail), ["l3", "l4"]);
        let none: Vec<_> = buffer
            .stream(LogOptions {
                follow: false,
                tail: Some(0),
            })
            .collect()
            .await;
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn follower_gets_history_then_live_lines_and_ends_on_close() {
        let buffer = Arc::new(LogBuffer::new(100));
        buffer.push(LogSource::Stdout, "old".into());
        let stream = buffer.stream(LogOptions {
            follow: true,
            tail: None,
        });
        let writer = {
            let buffer = Arc::clone(&buffer);
            tokio::spawn(async move {
                for i in 0..1000 {
                    buffer.push(LogSource::Stderr, format!("new{i}"));
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                buffer.close();
            })
        };
        let lines: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.collect())
            .await
            .unwrap();
        writer.await.unwrap();
        assert_eq!(
            lines.len(),
            1001,
            "no line may be lost between history and live"
        );
        assert_eq!(lines[0].line, "old");
        assert!(
            lines[1..]
                .iter()
                .enumerate()
                .all(|(i, l)| l.line == format!("new{i}"))
        );
    }

    #[tokio::test]
    async fn pump_splits_lines_and_keeps_a_last_partial_line() {
        let buffer = Arc::new(LogBuffer::new(100));
        let input: &[u8] = b"a\nbcdefgh\nwxyz\n\xffz\nend";
        pump(input, LogSource::Stdout, Arc::clone(&buffer), 4).await;
        buffer.close();
        let lines: Vec<_> = buffer.stream(LogOptions::default()).collect().await;
        assert_eq!(
            texts(&lines),
            ["a", "bcde", "fgh", "wxyz", "\u{fffd}z", "end"]
        );
    }
}
