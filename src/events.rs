//! Run events as JSON lines, one per node as it starts, succeeds, fails or is skipped: what a
//! pipeline follows (fedimg sent the same facts as bus messages).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// Where events go. Writes are whole lines, so concurrent nodes never interleave within one.
pub struct Events {
    sink: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Started,
    Succeeded,
    Failed,
    Skipped,
    /// Done as far as AWS allows now; a later run does the rest (the event's `error` says when).
    Waiting,
}

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    pub stack: &'a str,
    pub node: &'a str,
    pub region: &'a str,
    /// `create`, `update`, `replace`, `delete`, `no-op`.
    pub action: &'a str,
    pub event: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// Where a boot test's collected reports were stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports: Option<&'a Path>,
}

impl Events {
    /// `-` is standard output; anything else a file, created or truncated.
    pub fn open(target: &Path) -> std::io::Result<Events> {
        let sink: Box<dyn Write + Send> = if target == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(target)?)
        };
        Ok(Events::to(sink))
    }

    pub fn to(sink: Box<dyn Write + Send>) -> Events {
        Events { sink: Mutex::new(sink) }
    }

    /// Writes one event. A pipeline reading events must not be able to break a run: write errors
    /// are logged, not returned.
    pub fn emit(&self, event: &Event<'_>) {
        let mut line = serde_json::to_vec(event).expect("events serialize");
        line.push(b'\n');
        let mut sink = self.sink.lock().expect("event sink lock");
        if let Err(error) = sink.write_all(&line).and_then(|()| sink.flush()) {
            tracing::warn!(%error, "could not write an event");
        }
    }
}

/// Now, as RFC 3339.
pub fn now() -> String {
    crate::deprecation::format(crate::deprecation::now())
}
