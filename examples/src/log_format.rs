//! `swarmd --log-format json|text --log-level LEVEL`: the daemon's logs
//! through `tracing`, every line with this node's id (`node_id`) once the
//! node has one, and a task's lines with its `task_id`.
//!
//! JSON lines use the keys of dockerd's JSON logs (`level`, `msg`,
//! `time`), then `target`, `node_id`, the fields of the spans the event is
//! in, and the event's own fields:
//!
//! ```text
//! {"level":"info","msg":"started","time":"2026-12-04T20:11:09.123456789Z","target":"swarm_runtime_process::process","node_id":"k3j2...","task_id":"x9a...","pid":4242}
//! ```

use std::fmt;
use std::sync::RwLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: `time level target: message fields`.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `--log-level`, with dockerd's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// What a developer looks at.
    Debug,
    /// What an operator looks at (the default).
    Info,
    /// What may need a look.
    Warn,
    /// What went wrong.
    Error,
    /// As error (dockerd's name for the least).
    Fatal,
}

impl LogLevel {
    fn level(self) -> Level {
        match self {
            Self::Trace => Level::TRACE,
            Self::Debug => Level::DEBUG,
            Self::Info => Level::INFO,
            Self::Warn => Level::WARN,
            Self::Error | Self::Fatal => Level::ERROR,
        }
    }

    /// The `tracing` filter: this level for the daemon, and no more than
    /// warnings from the chattiest libraries (raft, HTTP/2) unless a
    /// level below info asks for theirs too.
    #[must_use]
    pub fn directives(self) -> String {
        let ours = self.level();
        // (tracing orders the more verbose levels higher.)
        let theirs = if ours > Level::INFO {
            Level::INFO
        } else {
            ours.min(Level::WARN)
        };
        let ours = ours.as_str().to_lowercase();
        let theirs = theirs.as_str().to_lowercase();
        format!("{ours},openraft={theirs},h2={theirs},tower={theirs},hyper={theirs}")
    }
}

static NODE_ID: RwLock<Option<String>> = RwLock::new(None);

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells the user `text` on stderr: a plain line, or in JSON mode a log
/// line (an error's if `error`), so that stderr stays all JSON.
pub fn note(text: &str, error: bool) {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        if error {
            tracing::error!("{text}");
        } else {
            tracing::info!("{text}");
        }
    } else {
        eprintln!("{text}");
    }
}

/// Names this daemon's node in every line from now on (none: no node).
pub fn set_node_id(id: Option<&str>) {
    if let Ok(mut n) = NODE_ID.write() {
        *n = id.map(str::to_owned);
    }
}

fn node_id() -> Option<String> {
    NODE_ID.read().ok().and_then(|n| n.clone())
}

/// Installs the global subscriber: `format` on stderr, at `level` (or
/// what `RUST_LOG` says when no level is given).
pub fn init(format: LogFormat, level: Option<LogLevel>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l.directives()),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| LogLevel::Info.directives().into()),
    };
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(ansi)
            .event_format(Text(tracing_subscriber::fmt::format()))
            .init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(Json)
            .init(),
    }
}

/// The stock text line, with `node_id=` first.
struct Text<F>(F);

impl<S, N, F> FormatEvent<S, N> for Text<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Unless the line names a node_id of its own.
        let mut own = HasField("node_id", false);
        event.record(&mut own);
        if let Some(id) = node_id().filter(|_| !own.1) {
            write!(writer, "node_id={id} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// One JSON object per event.
struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "level".into(),
            Value::String(meta.level().as_str().to_lowercase()),
        );
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let msg = fields
            .0
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        line.insert("msg".into(), msg);
        line.insert(
            "time".into(),
            Value::String(
                humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            ),
        );
        line.insert("target".into(), Value::String(meta.target().to_owned()));
        if let Some(id) = node_id() {
            line.insert("node_id".into(), Value::String(id));
        }
        // The spans' fields, outermost first (JsonFields wrote them).
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(f)
                {
                    for (k, v) in m {
                        keep(&mut line, k, v);
                    }
                }
            }
        }
        for (k, v) in fields.0 {
            keep(&mut line, k, v);
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Puts a span's or the event's field in the line: the innermost value of
/// a name wins (the event's own `node_id` too), but a field never replaces
/// the line's own `level`, `msg`, `time` or `target`.
fn keep(line: &mut Map<String, Value>, key: String, value: Value) {
    if !["level", "msg", "time", "target"].contains(&key.as_str()) {
        line.insert(key, value);
    }
}

/// Whether an event has the field named `.0`.
struct HasField(&'static str, bool);

impl Visit for HasField {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        self.1 |= field.name() == self.0;
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_keep_libraries_quieter() {
        assert_eq!(
            LogLevel::Info.directives(),
            "info,openraft=warn,h2=warn,tower=warn,hyper=warn"
        );
        assert!(
            LogLevel::Error
                .directives()
                .starts_with("error,openraft=error")
        );
        assert!(
            LogLevel::Debug
                .directives()
                .starts_with("debug,openraft=info")
        );
    }

    #[test]
    fn json_lines_carry_the_node_and_the_fields() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(Json)
            .with_writer(move || out.clone())
            .finish();
        set_node_id(Some("node-1"));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("agent", service = "web");
            let _in = span.enter();
            tracing::warn!(task_id = "t1", pid = 42_u64, "started");
        });
        set_node_id(None);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "started");
        assert_eq!(v["node_id"], "node-1");
        assert_eq!(v["task_id"], "t1");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["service"], "web");
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    }
}
