//! Upload progress as people and pipelines want it: a bar per upload on a terminal (bytes, rate,
//! time left), plain lines in a log, which must hold no escape codes and never look hung.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cloud::Progress;
use crate::render::report::took;

/// How often a log hears about an upload that is still running.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// How often a log hears about a wait on AWS that is not over (a copy may take half an hour).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// Progress shown on standard error: bars on a terminal, lines otherwise.
pub fn on_stderr() -> Arc<dyn Progress> {
    let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
    if std::io::stderr().is_terminal() && !dumb {
        Arc::new(Bars::default())
    } else {
        Arc::new(Lines::new(Box::new(std::io::stderr()), LINE_EVERY, HEARTBEAT_EVERY))
    }
}

/// One bar per running upload, a spinner per node at work and per wait on AWS, and a line
/// above them as each node ends.
struct Bars {
    all: MultiProgress,
    running: Mutex<HashMap<String, ProgressBar>>,
    spinners: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            all: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            running: Mutex::default(),
            spinners: Mutex::default(),
        }
    }
}

impl Bars {
    /// The spinner of `key`, made on first use with `message`.
    fn spinner(&self, key: &str, message: &str) {
        let mut spinners = self.spinners.lock().expect("progress lock");
        let spinner = spinners.entry(key.to_string()).or_insert_with(|| {
            let style =
                ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})").expect("a valid template");
            let spinner = self.all.add(ProgressBar::new_spinner().with_style(style).with_prefix(key.to_string()));
            spinner.enable_steady_tick(Duration::from_millis(250));
            spinner
        });
        spinner.set_message(message.to_string());
    }

    fn clear(&self, key: &str) {
        if let Some(spinner) = self.spinners.lock().expect("progress lock").remove(key) {
            spinner.finish_and_clear();
        }
    }
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bars")
    }
}

impl Progress for Bars {
    fn bytes(&self, work: &str, done: u64, total: u64) {
        let mut running = self.running.lock().expect("progress lock");
        let bar = running.entry(work.to_string()).or_insert_with(|| {
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            self.all.add(ProgressBar::new(total).with_style(style).with_prefix(work.to_string()))
        });
        bar.set_position(done);
        if done >= total {
            bar.finish();
            running.remove(work);
        }
    }

    fn started(&self, node: &str, what: &str) {
        self.spinner(node, what);
    }

    fn finished(&self, node: &str, outcome: &str, seconds: f64) {
        self.clear(node);
        let _ = self.all.println(format!("{node}: {outcome} ({})", took(seconds)));
    }

    fn waiting(&self, work: &str, state: &str) {
        self.spinner(work, state);
    }

    fn waited(&self, work: &str) {
        self.clear(work);
    }

    fn phase(&self, what: &str) {
        let _ = self.all.println(format!("{what}…"));
    }
}

/// Plain lines: when an upload starts, every `every` while it runs, and when it is complete;
/// when a node starts and ends; and every `heartbeat` for each wait on AWS that goes on, so a
/// pipeline's log never looks hung.
pub struct Lines {
    out: Mutex<Box<dyn Write + Send>>,
    every: Duration,
    heartbeat: Duration,
    /// Running uploads: when they started and when a line last said so.
    running: Mutex<HashMap<String, (Instant, Instant)>>,
    /// Waits on AWS: when they started and when a line last said so.
    waits: Mutex<HashMap<String, (Instant, Instant)>>,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lines")
    }
}

impl Lines {
    pub fn new(out: Box<dyn Write + Send>, every: Duration, heartbeat: Duration) -> Lines {
        Lines { out: Mutex::new(out), every, heartbeat, running: Mutex::default(), waits: Mutex::default() }
    }

    /// A closed or full log must not stop an upload: write errors are dropped.
    fn say(&self, line: String) {
        let mut out = self.out.lock().expect("progress output lock");
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

impl Progress for Lines {
    fn bytes(&self, work: &str, done: u64, total: u64) {
        let now = Instant::now();
        let mut running = self.running.lock().expect("progress lock");
        // Nothing sent yet of a running upload: it started again (a retried node).
        if done == 0 {
            running.remove(work);
        }
        let Some((started, said)) = running.get_mut(work) else {
            running.insert(work.to_string(), (now, now));
            drop(running);
            return self.say(format!("{work}: sending {}", HumanBytes(total)));
        };
        let elapsed = now - *started;
        let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
        if done >= total {
            running.remove(work);
            drop(running);
            let took = format!("{:.1} s", elapsed.as_secs_f64());
            return self.say(format!("{work}: sent {} in {took} ({}/s)", HumanBytes(total), HumanBytes(rate as u64)));
        }
        if now - *said < self.every {
            return;
        }
        *said = now;
        drop(running);
        let left = HumanDuration(Duration::from_secs_f64((total - done) as f64 / rate.max(1.0)));
        let percent = done * 100 / total.max(1);
        self.say(format!(
            "{work}: sent {} of {} ({percent}%), {}/s, about {left} left",
            HumanBytes(done),
            HumanBytes(total),
            HumanBytes(rate as u64)
        ));
    }

    fn started(&self, node: &str, what: &str) {
        self.say(format!("{node}: {what} started"));
    }

    fn finished(&self, node: &str, outcome: &str, seconds: f64) {
        // A failed upload never reports its last byte: its node's end is its end.
        self.running.lock().expect("progress lock").retain(|work, _| !work.starts_with(&format!("{node} ")));
        self.say(format!("{node}: {outcome} ({})", took(seconds)));
    }

    fn waiting(&self, work: &str, state: &str) {
        let now = Instant::now();
        let mut waits = self.waits.lock().expect("progress lock");
        let (started, said) = waits.entry(work.to_string()).or_insert((now, now));
        if now - *said < self.heartbeat {
            return;
        }
        *said = now;
        let elapsed = took((now - *started).as_secs_f64());
        drop(waits);
        self.say(format!("{work}: still {state} after {elapsed}"));
    }

    fn waited(&self, work: &str) {
        self.waits.lock().expect("progress lock").remove(work);
    }

    fn phase(&self, what: &str) {
        self.say(format!("{what}…"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log that the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap().lines().map(str::to_string).collect()
        }
    }

    #[test]
    fn a_log_hears_the_start_the_progress_and_the_end() {
        let log = Shared::default();
        let lines = Lines::new(Box::new(log.clone()), Duration::ZERO, Duration::ZERO);
        let mib = 1024 * 1024;
        lines.bytes("snapshot/a upload", 0, 4 * mib);
        lines.bytes("snapshot/a upload", mib, 4 * mib);
        lines.bytes("snapshot/a upload", 4 * mib, 4 * mib);
        let said = log.lines();
        assert_eq!(said.len(), 3, "{said:?}");
        assert_eq!(said[0], "snapshot/a upload: sending 4.00 MiB");
        assert!(said[1].starts_with("snapshot/a upload: sent 1.00 MiB of 4.00 MiB (25%), "), "{said:?}");
        assert!(said[2].starts_with("snapshot/a upload: sent 4.00 MiB in "), "{said:?}");
        assert!(said.iter().all(|line| !line.contains('\u{1b}')), "no escape codes in a log");
    }

    #[test]
    fn a_log_hears_nodes_start_and_end_and_a_heartbeat_while_aws_works() {
        let log = Shared::default();
        let lines = Lines::new(Box::new(log.clone()), Duration::ZERO, Duration::ZERO);
        lines.phase("reading live state");
        lines.started("image/a@eu-west-1", "create");
        lines.waiting("snapshot snap-1 in eu-west-1", "pending, 45%");
        lines.waited("snapshot snap-1 in eu-west-1");
        lines.finished("image/a@eu-west-1", "created ami-1", 125.0);
        let said = log.lines();
        assert_eq!(said[0], "reading live state…");
        assert_eq!(said[1], "image/a@eu-west-1: create started");
        assert!(said[2].starts_with("snapshot snap-1 in eu-west-1: still pending, 45% after "), "{said:?}");
        assert_eq!(said[3], "image/a@eu-west-1: created ami-1 (2m 5s)");
        assert_eq!(said.len(), 4, "{said:?}");
    }

    #[test]
    fn heartbeats_come_once_a_period_per_wait() {
        let log = Shared::default();
        let lines = Lines::new(Box::new(log.clone()), Duration::ZERO, Duration::from_secs(3600));
        for _ in 0..100 {
            lines.waiting("AMI ami-1 in us-east-1", "pending");
            lines.waiting("AMI ami-2 in us-east-1", "pending");
        }
        assert!(log.lines().is_empty(), "no heartbeat before a period passed: {:?}", log.lines());
    }

    #[test]
    fn a_log_is_not_flooded() {
        let log = Shared::default();
        let lines = Lines::new(Box::new(log.clone()), Duration::from_secs(3600), Duration::from_secs(3600));
        lines.bytes("snapshot/b upload", 0, 1000);
        for done in 1..1000 {
            lines.bytes("snapshot/b upload", done, 1000);
        }
        lines.bytes("snapshot/b upload", 1000, 1000);
        assert_eq!(log.lines().len(), 2, "{:?}", log.lines());
    }

    #[test]
    fn a_failed_upload_is_forgotten_and_a_retry_starts_afresh() {
        let log = Shared::default();
        let lines = Lines::new(Box::new(log.clone()), Duration::from_secs(3600), Duration::from_secs(3600));
        lines.bytes("snapshot/d upload", 0, 1000);
        lines.bytes("snapshot/d upload", 400, 1000);
        lines.finished("snapshot/d", "failed: the file changed", 1.0);
        assert!(lines.running.lock().unwrap().is_empty(), "the failed upload is not running any more");
        // The next attempt says it starts, from nothing.
        lines.bytes("snapshot/d upload", 0, 1000);
        lines.bytes("snapshot/d upload", 0, 1000);
        let said = log.lines();
        assert_eq!(said.iter().filter(|l| l.contains("sending")).count(), 3, "{said:?}");
    }

    #[test]
    fn a_closed_log_does_not_stop_the_work() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let lines = Lines::new(Box::new(Closed), Duration::ZERO, Duration::ZERO);
        lines.bytes("snapshot/c upload", 0, 10);
        lines.bytes("snapshot/c upload", 10, 10);
    }
}
