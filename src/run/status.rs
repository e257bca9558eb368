//! `rlmec runs` and `rlmec status DIR`: run directories and their stages as plain text.

use std::fmt::Write;
use std::path::Path;

use super::{RunDir, RunDirError, StageState};

/// One line per stage: name, state, time.
fn stage_lines(run: &RunDir, out: &mut String) -> Result<(), RunDirError> {
    let stages = run.stages()?;
    if stages.is_empty() {
        out.push_str("  (no stage started yet)\n");
    }
    for (name, state) in stages {
        let detail = match &state {
            StageState::Done {
                seconds,
                finished_at,
                reused_from,
            } => match reused_from {
                Some(origin) => format!("{:>8}   in {origin}", duration(*seconds)),
                None => format!(
                    "{:>8}   finished {} UTC",
                    duration(*seconds),
                    format_time(*finished_at)
                ),
            },
            StageState::Running { pid, since } => {
                format!("pid {pid}   since {} UTC", format_time(*since))
            }
            StageState::Interrupted { since } => format!(
                "started {} UTC; a rerun with --out {} resumes it",
                format_time(*since),
                run.path().display()
            ),
        };
        let line = format!("{:<12} {detail}", state.label());
        let _ = writeln!(out, "  {name:<24} {line}");
    }
    Ok(())
}

/// A UTC time as `2026-11-24 10:15:00`.
pub fn format_time(unix_seconds: f64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix_seconds as i64)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| "?".into())
}

/// `95.0s`, `12m 05s`, `1h 02m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        _ if seconds < 60.0 => format!("{seconds:.1}s"),
        0..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Every run under `parent` with a one-line summary of its stages.
pub fn list(parent: &Path) -> Result<String, RunDirError> {
    let runs = super::list(parent)?;
    let mut out = String::new();
    if runs.is_empty() {
        let _ = writeln!(out, "no runs under {}", parent.display());
    }
    for run in runs {
        let stages = run.stages()?;
        let count = |f: fn(&StageState) -> bool| stages.iter().filter(|(_, s)| f(s)).count();
        let done = count(|s| matches!(s, StageState::Done { .. }));
        let running = count(|s| matches!(s, StageState::Running { .. }));
        let interrupted = count(|s| matches!(s, StageState::Interrupted { .. }));
        let reused = count(|s| {
            matches!(
                s,
                StageState::Done {
                    reused_from: Some(_),
                    ..
                }
            )
        });
        let mut state = format!("{done} done");
        if reused > 0 {
            let _ = write!(state, " ({reused} reused)");
        }
        if running > 0 {
            let _ = write!(state, ", {running} running");
        }
        if interrupted > 0 {
            let _ = write!(state, ", {interrupted} interrupted");
        }
        let _ = writeln!(
            out,
            "{:<48} {:<28} {state}",
            run.path().display(),
            run.script().unwrap_or_else(|| "?".into())
        );
    }
    Ok(out)
}

/// One run: its script, config and every stage's state.
pub fn status(dir: &Path) -> Result<String, RunDirError> {
    let run = RunDir::existing(dir)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  ({})",
        dir.display(),
        run.script().unwrap_or_else(|| "script unknown".into())
    );
    let config = dir.join("config.json");
    if config.is_file() {
        let _ = writeln!(out, "  config: {}", config.display());
    }
    stage_lines(&run, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(4.25), "4.2s");
        assert_eq!(duration(725.0), "12m 05s");
        assert_eq!(duration(3720.0), "1h 02m");
    }
}
