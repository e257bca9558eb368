//! Logging through `tracing`: human logs on stderr, script `print` output on stdout.
//!
//! `RUST_LOG` wins when set; otherwise `-v`/`-q` pick the level of rlmec's own logs (other
//! crates stay at `warn`). A script's `print` is an event with target [`PRINT_TARGET`] that
//! is written bare to stdout, so a script's tables read cleanly and can be piped, while its
//! `debug` goes to the log at debug level with the script position. Both writers suspend the
//! progress bars while they write. Once a run directory is open, every log line and print
//! is also appended to its `log.txt` ([`log_to_file`]), without colours.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Target of the events that carry a script's `print` output.
pub const PRINT_TARGET: &str = "rlmec::print";

/// Install the global subscriber. `verbosity` is `#-v` minus `#-q`.
pub fn init(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-1 => Level::WARN,
        0 => Level::INFO,
        1 => Level::DEBUG,
        _ => Level::TRACE,
    };
    let log_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,rlmec={level}")));

    let logs = tracing_subscriber::fmt::layer()
        .with_writer(SuspendingWriter(Stream::Stderr))
        .with_target(false)
        .with_filter(filter_fn(|meta| meta.target() != PRINT_TARGET))
        .with_filter(log_filter);
    // Prints are the script's output: shown unless `-qq`.
    let print_level = if verbosity <= -2 {
        LevelFilter::OFF
    } else {
        LevelFilter::INFO
    };
    let prints = tracing_subscriber::fmt::layer()
        .with_writer(SuspendingWriter(Stream::Stdout))
        .event_format(BareMessage)
        .with_filter(Targets::new().with_target(PRINT_TARGET, print_level));

    let file = tracing_subscriber::fmt::layer()
        .with_writer(RunLog)
        .with_ansi(false)
        .with_target(false)
        .with_filter(
            Targets::new()
                .with_target(PRINT_TARGET, LevelFilter::INFO)
                .with_target("rlmec", LevelFilter::INFO),
        );

    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(prints)
        .with(file)
        .try_init();
}

/// The open run's `log.txt`, once there is one.
static RUN_LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Append every later log line and print to `path` as well. A file that cannot be opened
/// costs a warning, never the run.
pub fn log_to_file(path: &Path) {
    match File::options().create(true).append(true).open(path) {
        Ok(file) => *RUN_LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(file),
        Err(e) => tracing::warn!("{}: cannot write the run log: {e}", path.display()),
    }
}

/// Writes to the run's log file, or nowhere before a run directory is open.
#[derive(Clone, Copy)]
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut file = RUN_LOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
        match file.as_mut() {
            Some(f) => f.write_all(buf).map(|()| buf.len()),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = RunLog;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Writes whole events while the progress bars are lifted out of the way.
#[derive(Clone, Copy)]
struct SuspendingWriter(Stream);

impl Write for SuspendingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        crate::progress::multi().suspend(|| match self.0 {
            Stream::Stdout => io::stdout().lock().write_all(buf),
            Stream::Stderr => io::stderr().lock().write_all(buf),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0 {
            Stream::Stdout => io::stdout().flush(),
            Stream::Stderr => io::stderr().flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for SuspendingWriter {
    type Writer = SuspendingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Formats an event as its `message` field alone, followed by a newline.
struct BareMessage;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for BareMessage
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut visitor = MessageVisitor(&mut writer, Ok(()));
        event.record(&mut visitor);
        visitor.1?;
        writeln!(writer)
    }
}

struct MessageVisitor<'w, 'a>(
    &'w mut tracing_subscriber::fmt::format::Writer<'a>,
    std::fmt::Result,
);

impl tracing::field::Visit for MessageVisitor<'_, '_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.1 = write!(self.0, "{value}");
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.1 = write!(self.0, "{value:?}");
        }
    }
}
