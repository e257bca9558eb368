//! Inference servers started from a command template, with `python3 -m http.server` as the
//! server (it answers `GET /v1/models` with a file of that name): readiness, `{gguf}` made
//! only on demand, a server that exits or never answers, and no process left behind when a
//! server is dropped or rlmec is killed (SIGKILL: the parent-death signal; SIGTERM: the
//! handler stops the whole group). Every process a test starts is killed by a guard, also
//! when the test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rlmec::serve::{ServeError, ServeInputs, ServeOptions, ServedModel, Template};

/// The fake server: serves the `{model}` folder, whose `v1/models` lists one model.
const HTTP_SERVER: &str = "python3 -m http.server {port} --bind {host} --directory {model}";

/// The fake server started by a shell that first puts `sleep 600` in the background (a
/// helper of the server, in its group) and writes that helper's pid to `grandchild.pid`.
const WITH_GRANDCHILD: &str = r#"sh -c 'sleep 600 & echo $! > "$1/grandchild.pid"; exec python3 -m http.server "$0" --bind 127.0.0.1 --directory "$1"' {port} {model}"#;

/// Set in the re-executed test binary that plays rlmec: the folder to serve from.
const PARENT_DIR: &str = "RLMEC_TEST_SERVE_PARENT_DIR";

fn quick() -> ServeOptions {
    ServeOptions {
        startup_timeout_s: 30.0,
        poll_interval_s: 0.05,
        stop_timeout_s: 5.0,
    }
}

/// A folder the fake server serves, listing the model `id`.
fn model_dir(parent: &Path, id: &str) -> PathBuf {
    let dir = parent.join(id);
    std::fs::create_dir_all(dir.join("v1")).unwrap();
    let list = serde_json::json!({"object": "list", "data": [{"id": id, "object": "model"}]});
    std::fs::write(dir.join("v1/models"), list.to_string()).unwrap();
    dir
}

fn inputs(model: &Path, log: &Path) -> ServeInputs {
    ServeInputs {
        model: model.to_path_buf(),
        name: "policy".into(),
        gguf: None,
        log: log.to_path_buf(),
    }
}

fn start(
    template: &str,
    inputs: ServeInputs,
    opts: &ServeOptions,
) -> Result<ServedModel, ServeError> {
    ServedModel::start(&Template::parse(template).unwrap(), inputs, opts)
}

/// Kills the processes it holds when dropped, in case a test failed before they stopped.
struct Reaper(Vec<i32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                // SAFETY: sends a signal to a process this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The re-executed test binary playing rlmec; killed and reaped when dropped.
struct Parent(Child);

impl Drop for Parent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Reads a pid a process writes into `path`, waiting for it.
fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} was never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET {base_url}/v1/models`: the status line and body.
fn get_models(base_url: &str) -> std::io::Result<String> {
    let address = base_url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(address)?;
    write!(stream, "GET /v1/models HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_ready_server_answers_at_its_base_url_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir(dir.path(), "fake-model");
    let log = dir.path().join("stage/serve.log");
    let served = start(HTTP_SERVER, inputs(&model, &log), &quick()).unwrap();
    let _reaper = Reaper(vec![served.pid() as i32]);
    let base_url = served.base_url();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
    let answer = get_models(&base_url).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(r#""id":"fake-model""#), "{answer}");
    assert_eq!(served.model_id(), Some("fake-model"));
    assert_eq!(served.name(), "policy");
    assert_eq!(served.log_path(), log);
    let pid = served.pid() as i32;
    let status = served.stop().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert!(!alive(pid));
    assert!(get_models(&base_url).is_err(), "still answering after stop");
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("GET /v1/models"),
        "the server's own log: {written}"
    );
}

#[test]
fn the_gguf_file_is_made_only_for_a_template_that_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir(dir.path(), "safetensors-model");
    let log = dir.path().join("serve.log");
    let made = Arc::new(AtomicBool::new(false));
    let maker = |made: &Arc<AtomicBool>, path: PathBuf| {
        let made = made.clone();
        Some(Box::new(move || {
            made.store(true, Ordering::SeqCst);
            Ok(path)
        }) as rlmec::serve::GgufMaker)
    };

    let served = start(
        HTTP_SERVER,
        ServeInputs {
            gguf: maker(&made, dir.path().join("unused.gguf")),
            ..inputs(&model, &log)
        },
        &quick(),
    )
    .unwrap();
    let _reaper = Reaper(vec![served.pid() as i32]);
    assert!(
        !made.load(Ordering::SeqCst),
        "made a GGUF file nobody asked for"
    );
    drop(served);

    // The fake server serves the "GGUF" path, here a folder that lists another model.
    let gguf = model_dir(dir.path(), "gguf-model");
    let served = start(
        "python3 -m http.server {port} --bind {host} --directory {gguf}",
        ServeInputs {
            gguf: maker(&made, gguf),
            ..inputs(&model, &log)
        },
        &quick(),
    )
    .unwrap();
    let _reaper = Reaper(vec![served.pid() as i32]);
    assert!(made.load(Ordering::SeqCst));
    assert_eq!(served.model_id(), Some("gguf-model"));
}

#[test]
fn a_gguf_template_without_a_gguf_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let template = "llama-server -m {gguf} --port {port}";
    let err = start(template, inputs(dir.path(), &log), &quick())
        .err()
        .unwrap();
    assert!(matches!(err, ServeError::NoGguf { .. }), "{err}");
    assert!(err.to_string().contains(template), "{err}");

    let failing = ServeInputs {
        gguf: Some(Box::new(|| Err("q4_1 is not supported".to_string()))),
        ..inputs(dir.path(), &log)
    };
    let err = start(template, failing, &quick()).err().unwrap();
    assert!(matches!(err, ServeError::Gguf { .. }), "{err}");
    assert!(err.to_string().contains("q4_1 is not supported"), "{err}");
    assert!(!log.exists(), "no server was started");
}

#[test]
fn a_server_that_exits_reports_its_status_and_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    std::fs::write(&log, "an earlier server's line\n").unwrap();
    let template = r#"sh -c 'echo loading weights; echo "CUDA out of memory" >&2; exit 3' {port}"#;
    let err = start(template, inputs(dir.path(), &log), &quick())
        .err()
        .unwrap();
    let ServeError::Exited {
        status,
        tail,
        command,
        ..
    } = &err
    else {
        panic!("expected the server to have exited: {err}");
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(tail, "loading weights\nCUDA out of memory");
    assert!(
        command.starts_with("sh -c 'echo loading weights"),
        "{command}"
    );
    let message = err.to_string();
    for part in [
        "exit status: 3",
        "CUDA out of memory",
        "serve.log",
        command.as_str(),
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}

#[test]
fn a_server_that_never_answers_times_out_and_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let pid_file = dir.path().join("server.pid");
    let template = r#"sh -c 'echo still loading; echo $$ > "$1"; exec sleep 600' {port} {model}"#;
    let opts = ServeOptions {
        startup_timeout_s: 2.0,
        ..quick()
    };
    let started = Instant::now();
    let err = start(template, inputs(&pid_file, &log), &opts)
        .err()
        .unwrap();
    let pid = read_pid(&pid_file);
    let _reaper = Reaper(vec![pid]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(matches!(err, ServeError::NotReady { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("within 2 s"), "{message}");
    assert!(message.contains("still loading"), "{message}");
    assert!(!alive(pid), "the server runs on after the time limit");
}

#[test]
fn dropping_it_stops_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir(dir.path(), "fake-model");
    let served = start(
        WITH_GRANDCHILD,
        inputs(&model, &dir.path().join("serve.log")),
        &quick(),
    )
    .unwrap();
    let server = served.pid() as i32;
    let grandchild = read_pid(&model.join("grandchild.pid"));
    let _reaper = Reaper(vec![server, grandchild]);
    assert!(alive(server) && alive(grandchild));
    drop(served);
    assert!(!alive(server));
    assert!(
        gone_within(grandchild, Duration::from_secs(5)),
        "the server's helper survived"
    );
}

/// Starts the test binary again as the process that serves (see [`serving_parent`]) and
/// returns it with the pid of its server once that is ready.
fn parent_serving(dir: &Path) -> (Parent, i32) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["serving_parent", "--exact", "--ignored", "--nocapture"])
        .env(PARENT_DIR, dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let parent = Parent(child);
    let server = read_pid(&dir.join("server.pid"));
    (parent, server)
}

/// Not a test on its own: the process that [`parent_serving`] starts, standing for rlmec.
#[test]
#[ignore = "run by the tests that kill rlmec, as the rlmec they kill"]
fn serving_parent() {
    let Some(dir) = std::env::var_os(PARENT_DIR).map(PathBuf::from) else {
        return;
    };
    let model = model_dir(&dir, "fake-model");
    let served = start(
        WITH_GRANDCHILD,
        inputs(&model, &dir.join("serve.log")),
        &quick(),
    )
    .unwrap();
    let written = dir.join("server.pid.tmp");
    std::fs::write(&written, served.pid().to_string()).unwrap();
    std::fs::rename(&written, dir.join("server.pid")).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_rlmec_leaves_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut parent, server) = parent_serving(dir.path());
    let grandchild = read_pid(&dir.path().join("fake-model/grandchild.pid"));
    let _reaper = Reaper(vec![server, grandchild]);
    assert!(alive(server));
    parent.0.kill().unwrap();
    parent.0.wait().unwrap();
    assert!(
        gone_within(server, Duration::from_secs(5)),
        "the server outlived rlmec's SIGKILL"
    );
}

#[test]
fn an_interrupted_rlmec_stops_its_servers_and_ends_by_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut parent, server) = parent_serving(dir.path());
    let grandchild = read_pid(&dir.path().join("fake-model/grandchild.pid"));
    let _reaper = Reaper(vec![server, grandchild]);
    // SAFETY: signals the process this test started.
    unsafe { libc::kill(parent.0.id() as i32, libc::SIGTERM) };
    let status = parent.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert!(
        gone_within(server, Duration::from_secs(5)),
        "the server survived"
    );
    assert!(
        gone_within(grandchild, Duration::from_secs(5)),
        "the server's helper survived"
    );
}
