//! Training metrics as TensorBoard event files, `<run>/tensorboard/<stage>/`, so
//! `tensorboard --logdir runs/` shows every run's curves. Rewritten from `metrics.jsonl` on
//! every report (a resumed training truncates its metrics, so the events follow them).

use std::io::{BufWriter, Write};
use std::path::Path;

use syntaxdot_summary::SummaryWriter;

use super::collect::Training;
use super::{ReportError, io};

/// Write one event file per training stage, replacing the stage's earlier one.
pub(crate) fn write(run: &Path, trainings: &[Training]) -> Result<(), ReportError> {
    for t in trainings {
        let dir = run.join("tensorboard").join(&t.stage);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // TensorBoard reads any file whose name contains `tfevents`.
        let path = dir.join(format!("events.out.tfevents.{}.rlmec", t.last_event as u64));
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut out = BufWriter::new(file);
        {
            let mut writer = SummaryWriter::new(&mut out).map_err(io(&path))?;
            for (tag, values) in &t.columns {
                for (&step, &v) in t.steps.iter().zip(values) {
                    if v.is_finite() {
                        writer
                            .write_scalar(tag.as_str(), step as i64, v as f32)
                            .map_err(io(&path))?;
                    }
                }
            }
        }
        out.flush().map_err(io(&path))?;
    }
    Ok(())
}
