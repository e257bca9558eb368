//! Running the `rlmec` binary in tests.

use std::process::{Command, Output};

/// `rlmec ARGS` from the repository root, one torch thread, default log level.
pub fn rlmec_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rlmec"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RLMEC_TORCH_THREADS", "1")
        .env_remove("RUST_LOG");
    command
}

pub fn rlmec(args: &[&str]) -> Output {
    rlmec_command(args).output().expect("rlmec runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
