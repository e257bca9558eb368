//! Serving a model the run trained with an inference server (vLLM, SGLang, llama.cpp) for
//! the stage that needs it: started from a command template, used over its OpenAI API on
//! loopback, stopped when the stage ends.
//!
//! ```text
//! vllm serve {model} --port {port} --served-model-name {name} --dtype bfloat16
//! python3 -m llama_cpp.server --model {gguf} --host {host} --port {port}
//! ```
//!
//! [`ServedModel::start`] checks the template ([`template`]), makes the GGUF file only if
//! the template asks for `{gguf}`, picks a free port on 127.0.0.1, runs the command with
//! `sh -c 'exec COMMAND'` (one command: set variables with `env VAR=value server ...`), its
//! stdout and stderr appended to the log file the caller names, and polls
//! `GET /v1/models` until it answers 200. If the server exits first, or does not answer in
//! time, the error gives its exit status or the time limit, the command and the last lines
//! of its log, and no process of it is left.
//!
//! No server outlives rlmec:
//! - the server leads a process group of its own, and stopping it (`Drop`, or
//!   [`ServedModel::stop`]) signals the whole group: SIGTERM, `stop_timeout_s` for the server
//!   to exit, then SIGKILL for whatever is left (vLLM's workers, a shell's children);
//! - the server gets SIGTERM from the kernel when rlmec dies, even by SIGKILL (the
//!   parent-death signal, Linux); the server alone, not its group: it stops its own
//!   helpers then as on any SIGTERM;
//! - SIGINT, SIGTERM and SIGHUP sent to rlmec stop every live server's group as a stop does
//!   (10 s of grace), then end rlmec by the same signal, as it ended before. The group of
//!   its own keeps a terminal's Ctrl-C from reaching the server directly, so without this
//!   a server's helpers would survive an interrupt. The handler is installed when the first
//!   server starts, and only for signals with their default action; ending by the signal
//!   (not by an exit code of our choosing) keeps what an interrupted run leaves as it was:
//!   a stage's `.running` marker whose process is gone, read as interrupted.

mod groups;
mod log;
mod probe;
mod process;
pub mod template;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use log::ServerLog;
use process::ServerProcess;
pub use template::{Placeholder, Template, TemplateError};

/// The only address servers listen on.
pub const HOST: &str = "127.0.0.1";

/// The longest one `/v1/models` request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes the model's GGUF file and returns its path; called only for a template with
/// `{gguf}`.
pub type GgufMaker = Box<dyn FnOnce() -> Result<PathBuf, String> + Send>;

/// What a server is started for.
pub struct ServeInputs {
    /// The model's path (`{model}`).
    pub model: PathBuf,
    /// The name it is served under (`{name}`).
    pub name: String,
    /// Makes the GGUF file (`{gguf}`); `None` where the model cannot be written as GGUF.
    pub gguf: Option<GgufMaker>,
    /// The log file the server's output is appended to (e.g. the stage folder's `serve.log`).
    pub log: PathBuf,
}

/// How long to wait for a server (the `serve` options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeOptions {
    /// Seconds the server has to answer `/v1/models`.
    pub startup_timeout_s: f64,
    /// Seconds between two looks at it while it starts.
    pub poll_interval_s: f64,
    /// Seconds a stopped server has after SIGTERM before SIGKILL.
    pub stop_timeout_s: f64,
}

impl Default for ServeOptions {
    /// vLLM takes minutes to load and compile a large model before it listens.
    fn default() -> Self {
        Self {
            startup_timeout_s: 900.0,
            poll_interval_s: 0.5,
            stop_timeout_s: 30.0,
        }
    }
}

impl ServeOptions {
    fn seconds(option: &'static str, value: f64, zero_ok: bool) -> Result<Duration, ServeError> {
        crate::options::seconds(value, zero_ok)
            .map_err(|message| ServeError::Option { option, message })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serve option `{option}`: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    #[error("serve command `{template}` uses {{gguf}}, but no GGUF file can be made of {model}")]
    NoGguf { template: String, model: PathBuf },
    #[error("making the GGUF file of {model} for the serve command: {message}")]
    Gguf { model: PathBuf, message: String },
    #[error("no free port on {HOST} for the server: {0}")]
    Port(std::io::Error),
    #[error("server log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the server `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("server {pid}: waiting for it to end: {source}")]
    Reap { pid: u32, source: std::io::Error },
    #[error(
        "the server exited ({status}) before answering /v1/models\ncommand: {command}\nlast lines of {}:\n{tail}",
        .log.display()
    )]
    Exited {
        status: ExitStatus,
        command: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "the server did not answer http://{HOST}:{port}/v1/models within {seconds} s{}, so it was stopped\ncommand: {command}\nlast lines of {}:\n{tail}",
        .last_status.map(|s| format!(" (its last answer: HTTP {s})")).unwrap_or_default(),
        .log.display()
    )]
    NotReady {
        port: u16,
        seconds: f64,
        last_status: Option<u16>,
        command: String,
        log: PathBuf,
        tail: String,
    },
}

/// A running inference server; dropping it (or [`Self::stop`]) stops it.
pub struct ServedModel {
    process: ServerProcess,
    port: u16,
    name: String,
    model_id: Option<String>,
    command: String,
    log: ServerLog,
}

impl ServedModel {
    /// Starts the server `template` describes for `inputs` and waits until it answers
    /// `/v1/models`. Call it from a thread that outlives the server: the kernel's
    /// parent-death signal follows the thread that started it, not the process.
    pub fn start(
        template: &Template,
        inputs: ServeInputs,
        opts: &ServeOptions,
    ) -> Result<Self, ServeError> {
        let startup = ServeOptions::seconds("startup_timeout_s", opts.startup_timeout_s, false)?;
        let poll = ServeOptions::seconds("poll_interval_s", opts.poll_interval_s, false)?;
        let grace = ServeOptions::seconds("stop_timeout_s", opts.stop_timeout_s, true)?;
        let gguf = if template.uses(Placeholder::Gguf) {
            let make = inputs.gguf.ok_or_else(|| ServeError::NoGguf {
                template: template.source().to_string(),
                model: inputs.model.clone(),
            })?;
            let path = make().map_err(|message| ServeError::Gguf {
                model: inputs.model.clone(),
                message,
            })?;
            Some(path)
        } else {
            None
        };
        let port = free_port().map_err(ServeError::Port)?;
        let command = template.render(|placeholder| match placeholder {
            Placeholder::Model => inputs.model.display().to_string(),
            // Only asked for when the template has {gguf}, which made `gguf`.
            Placeholder::Gguf => gguf
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
                .to_string(),
            Placeholder::Port => port.to_string(),
            Placeholder::Host => HOST.to_string(),
            Placeholder::Name => inputs.name.clone(),
        });
        let (log, output) =
            ServerLog::open(&inputs.log, &command).map_err(|source| ServeError::Log {
                path: inputs.log.clone(),
                source,
            })?;
        let process =
            ServerProcess::spawn(&command, output, grace).map_err(|source| ServeError::Spawn {
                command: command.clone(),
                source,
            })?;
        tracing::info!(
            "server {} started: {command} (log {})",
            process.pid(),
            inputs.log.display()
        );
        let mut served = Self {
            process,
            port,
            name: inputs.name,
            model_id: None,
            command,
            log,
        };
        served.wait_ready(startup, poll)?;
        Ok(served)
    }

    /// Polls `/v1/models` until it answers 200 (noting the model id it lists), the server
    /// exits, or `startup` has passed.
    fn wait_ready(&mut self, startup: Duration, poll: Duration) -> Result<(), ServeError> {
        let started = Instant::now();
        let deadline = started + startup;
        let mut last_status = None;
        loop {
            if self.process.has_exited() {
                return Err(self.exited());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = REQUEST_TIMEOUT.min(left).max(Duration::from_millis(10));
            match probe::models(self.port, timeout) {
                Ok(answer) if answer.status == 200 => {
                    self.model_id = probe::first_model_id(&answer.body);
                    if self.model_id.is_none() {
                        tracing::warn!(
                            "the server's /v1/models lists no model id: {}",
                            answer.body.chars().take(200).collect::<String>()
                        );
                    }
                    tracing::info!(
                        "server ready after {:.1} s at {}",
                        started.elapsed().as_secs_f64(),
                        self.base_url()
                    );
                    return Ok(());
                }
                Ok(answer) => last_status = Some(answer.status),
                Err(e) => tracing::debug!("server not answering yet: {e}"),
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(startup, last_status));
            }
            std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// The error for a server that exited while starting (the rest of its group stopped).
    fn exited(&mut self) -> ServeError {
        match self.process.stop() {
            Ok(status) => ServeError::Exited {
                status,
                command: self.command.clone(),
                log: self.log.path().to_path_buf(),
                tail: self.log.tail(),
            },
            Err(e) => e,
        }
    }

    /// The error for a server that did not answer in time, once it is stopped.
    fn not_ready(&mut self, startup: Duration, last_status: Option<u16>) -> ServeError {
        if let Err(e) = self.process.stop() {
            return e;
        }
        ServeError::NotReady {
            port: self.port,
            seconds: startup.as_secs_f64(),
            last_status,
            command: self.command.clone(),
            log: self.log.path().to_path_buf(),
            tail: self.log.tail(),
        }
    }

    /// `http://127.0.0.1:PORT`, the server's OpenAI API being under `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// The name it was started under (`{name}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first model id the server's `/v1/models` listed (what requests must name: the
    /// `{name}` where the template passes it to the server, else the server's own choice,
    /// such as vLLM's model path); `None` if it listed none.
    pub fn model_id(&self) -> Option<&str> {
        self.model_id.as_deref()
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// The server's pid, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the server and everything it started, and returns how it ended (dropping it
    /// does the same).
    pub fn stop(mut self) -> Result<ExitStatus, ServeError> {
        self.process.stop()
    }
}

/// A port on 127.0.0.1 that nothing listens on now (the system's pick). Another process
/// could take it before the server binds it; the server then exits with the port in use,
/// which the error shows.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_model_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ServedModel>();
    }

    #[test]
    fn times_must_be_seconds() {
        assert_eq!(
            ServeOptions::seconds("stop_timeout_s", 0.0, true).unwrap(),
            Duration::ZERO
        );
        assert_eq!(
            ServeOptions::seconds("poll_interval_s", 0.25, false).unwrap(),
            Duration::from_millis(250)
        );
        for (value, zero_ok) in [
            (0.0, false),
            (-1.0, true),
            (f64::NAN, true),
            (f64::INFINITY, true),
        ] {
            let err = ServeOptions::seconds("startup_timeout_s", value, zero_ok).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("serve option `startup_timeout_s`: "),
                "{err}"
            );
        }
    }

    #[test]
    fn options_are_read_by_name() {
        let given = serde_json::json!({"startup_timeout_s": 60});
        let opts =
            crate::options::apply(&ServeOptions::default(), given.as_object().unwrap().clone())
                .unwrap();
        assert_eq!(opts.startup_timeout_s, 60.0);
        assert_eq!(opts.stop_timeout_s, 30.0);
        let unknown = serde_json::json!({"startup_timeout": 60});
        let err = crate::options::apply(
            &ServeOptions::default(),
            unknown.as_object().unwrap().clone(),
        )
        .unwrap_err();
        assert!(err.contains("startup_timeout"), "{err}");
    }

    #[test]
    fn invalid_options_are_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let template = Template::parse("srv --port {port}").unwrap();
        let inputs = ServeInputs {
            model: dir.path().into(),
            name: "m".into(),
            gguf: None,
            log: log.clone(),
        };
        let opts = ServeOptions {
            poll_interval_s: 0.0,
            ..ServeOptions::default()
        };
        let err = ServedModel::start(&template, inputs, &opts).err().unwrap();
        assert!(
            matches!(
                err,
                ServeError::Option {
                    option: "poll_interval_s",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!log.exists());
    }
}
