//! The training loop: micro-batches → loss → gradients accumulated over `grad_accum`
//! micro-batches → clip → AdamW step at the scheduled rate → metrics, checkpoint.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use super::TrainError;
use super::adamw::AdamW;
use super::batching::epoch_batches;
use super::checkpoint::{self, FileSum, Position, State};
use super::examples::{self, Example, RecordKind};
use super::metrics::MetricsLog;
use super::objective::Objective;
use super::options::TrainOptions;
use super::schedule::LrSchedule;
use super::{memory, tokens};
use crate::model::Model;
use crate::model::llama::TrainPass;

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Optimiser steps done, of `total_steps`.
    pub steps: usize,
    pub total_steps: usize,
    /// One metrics line per step of the whole run (resumed parts included).
    pub history: Vec<Value>,
    /// Records left out because the prompt alone reaches `max_len`.
    pub skipped: usize,
    /// The step this call resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// Stopped at `halt_at_step` before the end.
    pub halted: bool,
    /// Seconds and tokens of this call (not of the resumed parts).
    pub seconds: f64,
    pub tokens: usize,
    pub out: Option<PathBuf>,
}

/// CRC-32 over every example's tokens and values: the identity of the data in checkpoints.
fn fingerprint(examples: &[Example]) -> FileSum {
    let mut h = crc32fast::Hasher::new();
    for e in examples {
        for ids in [&e.prompt, &e.seq] {
            h.update(&(ids.len() as u64).to_le_bytes());
            ids.iter().for_each(|id| h.update(&id.to_le_bytes()));
        }
        if let Some(rl) = &e.rl {
            for v in rl.reward.iter().chain(&rl.ref_logp) {
                h.update(&v.to_le_bytes());
            }
        }
        if let Some(reg) = &e.reg {
            reg.ids.iter().for_each(|id| h.update(&id.to_le_bytes()));
            reg.weight.iter().for_each(|v| h.update(&v.to_le_bytes()));
        }
    }
    FileSum {
        bytes: examples.len() as u64,
        crc32: h.finalize(),
    }
}

/// The options whose values differ between a checkpoint and this run.
fn changed(saved: &Value, now: &Value) -> Vec<String> {
    let (Some(saved), Some(now)) = (saved.as_object(), now.as_object()) else {
        return vec!["(all)".into()];
    };
    let shown = |v: Option<&Value>| v.map_or("unset".to_string(), Value::to_string);
    let keys: std::collections::BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| saved.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k} (checkpoint {}, now {})",
                shown(saved.get(k)),
                shown(now.get(k))
            )
        })
        .collect()
}

struct Run<'a> {
    model: &'a Model,
    opts: &'a TrainOptions,
    examples: Vec<Example>,
    lengths: Vec<usize>,
    batches_per_epoch: usize,
    total_steps: usize,
    schedule: LrSchedule,
    trajectory: Value,
    data: FileSum,
}

impl Run<'_> {
    fn checkpoints(&self) -> Option<PathBuf> {
        self.opts.out.as_ref().map(|o| o.join("checkpoints"))
    }

    fn state(&self, position: Position) -> State {
        State {
            format: checkpoint::FORMAT,
            position,
            total_steps: self.total_steps,
            trajectory: self.trajectory.clone(),
            data: self.data,
            files: Default::default(),
        }
    }

    fn save_checkpoint(&self, optimizer: &AdamW, position: Position) -> Result<(), TrainError> {
        if let Some(root) = self.checkpoints() {
            let dir = checkpoint::save(
                &root,
                self.model,
                optimizer,
                self.state(position),
                self.opts.keep_checkpoints,
            )?;
            tracing::info!("checkpoint {}", dir.display());
        }
        Ok(())
    }

    /// A report of the run as it ended, when `out` holds this very run finished (its final
    /// model is loaded into the model, as if trained again).
    fn finished(&self, objective: &dyn Objective) -> Result<Option<TrainReport>, TrainError> {
        let Some(out) = self.opts.out.as_ref().filter(|_| self.opts.resume) else {
            return Ok(None);
        };
        let Some(state) = checkpoint::finished(out) else {
            return Ok(None);
        };
        if state.trajectory != self.trajectory
            || state.data != self.data
            || state.position.step != self.total_steps
        {
            return Ok(None);
        }
        checkpoint::load_weights(out, self.model)?;
        let (_, history) = MetricsLog::open(&out.join("metrics.jsonl"), state.position.step)?;
        tracing::info!(
            "{}: this training ({}) already finished; its final model is loaded",
            out.display(),
            objective.name()
        );
        Ok(Some(TrainReport {
            steps: state.position.step,
            total_steps: self.total_steps,
            history,
            skipped: 0,
            resumed_from: Some(state.position.step),
            halted: false,
            seconds: 0.0,
            tokens: 0,
            out: Some(out.clone()),
        }))
    }

    /// Load the newest checkpoint if resuming; the position to start from.
    fn resume(&self, optimizer: &mut AdamW) -> Result<Option<Position>, TrainError> {
        let Some(root) = self.checkpoints().filter(|_| self.opts.resume) else {
            return Ok(None);
        };
        let Some((dir, state)) = checkpoint::newest(&root)? else {
            return Ok(None);
        };
        let differences = changed(&state.trajectory, &self.trajectory);
        if !differences.is_empty() {
            return Err(TrainError::Resume(format!(
                "{}: this run's options differ from the checkpoint's: {}; pass `resume: false` to start over, or another `out`",
                dir.display(),
                differences.join(", ")
            )));
        }
        if state.data != self.data {
            return Err(TrainError::Resume(format!(
                "{}: the checkpoint was trained on other records ({} examples, crc {:08x}; now {}, {:08x}); pass `resume: false` to start over, or another `out`",
                dir.display(),
                state.data.bytes,
                state.data.crc32,
                self.data.bytes,
                self.data.crc32
            )));
        }
        checkpoint::load(&dir, &state, self.model, optimizer)?;
        tracing::info!(
            "resuming from {} (step {} of {})",
            dir.display(),
            state.position.step,
            self.total_steps
        );
        Ok(Some(state.position))
    }
}

/// Train `model` in place on `records` with `objective` (with `opts.lora`, LoRA adapters
/// attached to it for the purpose).
pub fn train(
    model: &mut Model,
    records: &[Value],
    objective: &mut dyn Objective,
    opts: &TrainOptions,
) -> Result<TrainReport, TrainError> {
    opts.validate().map_err(TrainError::Options)?;
    let kind = RecordKind::of(records);
    if objective.name() == "rlmec" && kind != RecordKind::Rlmec {
        return Err(TrainError::Options(
            "objective `rlmec` needs RLMEC records {input, output, regular, reward, ref_prob, weight_regular}; these have no `reward`".into(),
        ));
    }
    let tokenized = examples::tokenize(model, records, kind)?;
    train_examples(model, tokenized, objective, opts)
}

/// Train `model` in place on tokenised examples (what [`train`] does after tokenising).
pub fn train_examples(
    model: &mut Model,
    tokenized: Vec<Example>,
    objective: &mut dyn Objective,
    opts: &TrainOptions,
) -> Result<TrainReport, TrainError> {
    opts.validate().map_err(TrainError::Options)?;
    // Every entry point comes through here (`train` too): the steps reuse freed memory.
    let _reuse = crate::heap::Reuse::begin();
    match &opts.lora {
        // Adapters of this very shape (loaded, or trained before) go on training; others are
        // merged and fresh ones attached.
        Some(lora) if model.lora().is_some_and(|a| &a.config == lora) => {}
        Some(lora) => model
            .attach_lora(lora, opts.seed as i64)
            .map_err(|e| TrainError::Options(e.to_string()))?,
        None => {
            if model.merge_lora() {
                tracing::info!("merged the attached adapters: training every weight");
            }
            model.mark_edited();
        }
    }
    let model = &*model;
    let before = tokenized.len();
    let examples: Vec<Example> = tokenized
        .into_iter()
        .filter_map(|e| e.truncated(opts.max_len))
        .collect();
    let skipped = before - examples.len();
    if skipped > 0 {
        tracing::warn!(
            "{skipped} record(s) skipped: the prompt alone reaches max_len {}",
            opts.max_len
        );
    }
    if examples.is_empty() {
        return Err(TrainError::Options(format!(
            "no record to train on ({before} given, {skipped} too long for max_len {})",
            opts.max_len
        )));
    }
    let batches_per_epoch = examples.len().div_ceil(opts.batch_size);
    let steps_per_epoch = batches_per_epoch.div_ceil(opts.grad_accum);
    let total_steps = steps_per_epoch * opts.epochs;
    let run = Run {
        model,
        opts,
        lengths: examples.iter().map(Example::len).collect(),
        data: fingerprint(&examples),
        examples,
        batches_per_epoch,
        total_steps,
        schedule: LrSchedule::new(opts.schedule, opts.lr, opts.warmup_ratio, total_steps),
        trajectory: opts.trajectory(&objective.name()),
    };

    if let Some(done) = run.finished(objective)? {
        return Ok(TrainReport { skipped, ..done });
    }
    let mut optimizer = AdamW::new(&model.trainable(), opts.adamw);
    tracing::info!("{}", memory::estimate(model, opts, &run.lengths));
    let resumed = run.resume(&mut optimizer)?;
    if let Some(out) = &opts.out {
        // Another run's record (other options, or `resume: false`) must not outlive it.
        checkpoint::forget_finished(out);
    }
    let mut position = resumed.unwrap_or(Position {
        step: 0,
        epoch: 0,
        batch: 0,
    });
    let (mut metrics, mut history) = match &opts.out {
        Some(out) => {
            let (log, kept) = MetricsLog::open(&out.join("metrics.jsonl"), position.step)?;
            (Some(log), kept)
        }
        None => (None, Vec::new()),
    };
    tracing::info!(
        "training ({}): {} examples, {} micro-batches of {} per epoch, {} steps of {} × {}, {} epochs",
        objective.name(),
        run.examples.len(),
        batches_per_epoch,
        opts.batch_size,
        total_steps,
        opts.batch_size,
        opts.grad_accum,
        opts.epochs
    );

    let start = Instant::now();
    let mut tokens_total = 0usize;
    let mut halted = false;
    let bar = crate::progress::bar(total_steps as u64, "train");
    bar.set_position(position.step as u64);
    let mut last_saved = resumed.map(|p| p.step);
    let mut order: Option<(usize, Vec<Vec<usize>>)> = None;
    while position.step < total_steps {
        if opts.halt_at_step.is_some_and(|h| position.step >= h) {
            halted = true;
            break;
        }
        // The epoch's order, computed once per epoch.
        if order
            .as_ref()
            .is_none_or(|(epoch, _)| *epoch != position.epoch)
        {
            let batches = epoch_batches(&run.lengths, opts.batch_size, opts.seed, position.epoch);
            order = Some((position.epoch, batches));
        }
        let order = &order.as_ref().expect("computed above").1;
        let group_end = (position.batch + opts.grad_accum).min(run.batches_per_epoch);
        let group = &order[position.batch..group_end];
        let step_start = Instant::now();
        let outcome = step(&run, objective, &mut optimizer, group, position.step);
        let (line, tokens) = match outcome {
            Ok(done) => done,
            Err(e) => {
                // Keep what is done: the parameters are those after `position.step` steps.
                if last_saved != Some(position.step) && position.step > 0 {
                    run.save_checkpoint(&optimizer, position)?;
                }
                return Err(e);
            }
        };
        position = if group_end == run.batches_per_epoch {
            Position {
                step: position.step + 1,
                epoch: position.epoch + 1,
                batch: 0,
            }
        } else {
            Position {
                step: position.step + 1,
                batch: group_end,
                ..position
            }
        };
        tokens_total += tokens;
        let elapsed = step_start.elapsed().as_secs_f64();
        let mut line = line;
        line["epoch"] =
            json!(position.epoch as f64 + position.batch as f64 / run.batches_per_epoch as f64);
        line["tokens_per_s"] = json!(tokens as f64 / elapsed.max(1e-9));
        if let Some(log) = metrics.as_mut() {
            log.append(&line)?;
        }
        bar.set_message(format!(
            "loss {:.4}",
            line["loss"].as_f64().unwrap_or(f64::NAN)
        ));
        bar.inc(1);
        history.push(line);
        // The last step writes the final model instead (below).
        let every = opts.checkpoint_every;
        if position.step < total_steps && every > 0 && position.step.is_multiple_of(every) {
            run.save_checkpoint(&optimizer, position)?;
            last_saved = Some(position.step);
        }
    }
    bar.finish_and_clear();

    let seconds = start.elapsed().as_secs_f64();
    if !halted && let Some(out) = &opts.out {
        let saving = Instant::now();
        checkpoint::finish(out, model, run.state(position))
            .map_err(|e| TrainError::Save(e.to_string()))?;
        tracing::info!(
            "final {} written to {} in {:.1}s",
            if model.lora().is_some() {
                "adapter"
            } else {
                "model"
            },
            out.display(),
            saving.elapsed().as_secs_f64()
        );
    }
    tracing::info!(
        "trained {} of {} steps in {:.1}s ({:.0} tokens/s){}",
        position.step,
        total_steps,
        seconds,
        tokens_total as f64 / seconds.max(1e-9),
        if halted { ", halted" } else { "" }
    );
    Ok(TrainReport {
        steps: position.step,
        total_steps,
        history,
        skipped,
        resumed_from: resumed.map(|p| p.step),
        halted,
        seconds,
        tokens: tokens_total,
        out: opts.out.clone(),
    })
}

/// A step that ran out of memory (libtorch throws, tch panics) becomes an error that says so
/// and names the knobs that help; any other panic goes on unwinding.
fn out_of_memory(
    panic: Box<dyn std::any::Any + Send>,
    step: usize,
    opts: &TrainOptions,
) -> TrainError {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let lower = message.to_lowercase();
    if !(lower.contains("out of memory") || lower.contains("can't allocate memory")) {
        std::panic::resume_unwind(panic);
    }
    let where_ = if lower.contains("cuda") { "GPU" } else { "CPU" };
    let mut knobs = Vec::new();
    if opts.lora.is_none() {
        knobs.push(
            "`lora: #{r: 16}` (train adapters: no gradients or optimiser state for the weights)"
                .to_string(),
        );
    }
    if !opts.grad_checkpoint {
        knobs.push("`grad_checkpoint: true` (keep one layer's activations instead of all)".into());
    }
    if opts.batch_size > 1 {
        knobs.push(format!(
            "a smaller `batch_size` (now {}) with a larger `grad_accum` (now {}): the same effective batch",
            opts.batch_size, opts.grad_accum
        ));
    }
    knobs.push(format!("a smaller `max_len` (now {})", opts.max_len));
    // libtorch's own words, without the `unwrap` wrapper or its C++ backtrace.
    let detail = message
        .split_once("Torch(\"")
        .map_or(message.as_str(), |(_, m)| m);
    let first_line = detail
        .split(['\n', '"'])
        .next()
        .unwrap_or_default()
        .split("\\n")
        .next()
        .unwrap_or_default();
    TrainError::OutOfMemory {
        step,
        message: format!(
            "the {where_} ran out of memory; what helps: {} ({first_line})",
            knobs.join("; ")
        ),
    }
}

/// The seed of a micro-batch's dropout masks.
fn dropout_seed(seed: u64, step: usize, micro: usize) -> i64 {
    use crate::model::lora::mix;
    mix(mix(seed as i64, step as i64), micro as i64)
}

/// A micro-batch's loss, its tokens, and the loss's named parts.
type MicroBatch = (f64, usize, Vec<(String, f64)>);

/// One micro-batch's forward and backward (gradients accumulate, scaled by `1 / of`): its
/// loss, its tokens and the loss's parts.
fn micro_batch(
    run: &Run,
    objective: &mut dyn Objective,
    examples: &[&Example],
    pass: TrainPass,
    of: usize,
    step: usize,
) -> Result<MicroBatch, TrainError> {
    let mut batch = tokens::forward_with(run.model, examples, pass);
    let loss = objective
        .loss(&batch)
        .map_err(|message| TrainError::Objective { step, message })?;
    let value = loss.total.double_value(&[]);
    if !value.is_finite() {
        return Err(TrainError::Objective {
            step,
            message: format!("the loss is {value}"),
        });
    }
    // The gradient of the mean over the group's micro-batches.
    (&loss.total / of as f64).backward();
    if let Some(replay) = batch.replay.take() {
        replay.backward(run.model.net());
    }
    let parts = loss
        .parts
        .iter()
        .map(|(name, t)| (name.clone(), t.double_value(&[])))
        .collect();
    Ok((value, batch.tokens, parts))
}

/// One optimiser step over `group` (micro-batches of example indices): its metrics line
/// and the tokens it processed.
fn step(
    run: &Run,
    objective: &mut dyn Objective,
    optimizer: &mut AdamW,
    group: &[Vec<usize>],
    step: usize,
) -> Result<(Value, usize), TrainError> {
    optimizer.zero_grad();
    let mut loss_sum = 0.0;
    let mut parts: Vec<(String, f64)> = Vec::new();
    let mut tokens = 0;
    let dropout = run.model.lora().is_some_and(|a| a.config.dropout > 0.0);
    for (m, micro) in group.iter().enumerate() {
        let examples: Vec<&Example> = micro.iter().map(|&i| &run.examples[i]).collect();
        let pass = TrainPass {
            checkpoint: run.opts.grad_checkpoint,
            // Dropout masks as a function of the run's seed, the step and the micro-batch:
            // a resumed run draws what an uninterrupted one would.
            dropout_seed: dropout.then(|| dropout_seed(run.opts.seed, step, m)),
        };
        // Only the forward and backward passes are guarded: running out of memory there
        // leaves the parameters as the last step left them (the gradients are dropped).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            micro_batch(run, objective, &examples, pass, group.len(), step)
        }))
        .unwrap_or_else(|panic| Err(out_of_memory(panic, step, run.opts)));
        let (value, batch_tokens, loss_parts) = outcome?;
        tokens += batch_tokens;
        loss_sum += value;
        for (name, v) in loss_parts {
            match parts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, acc)) => *acc += v,
                None => parts.push((name, v)),
            }
        }
    }
    let grad_norm = optimizer.clip_grad_norm(run.opts.max_grad_norm);
    if !grad_norm.is_finite() {
        return Err(TrainError::Objective {
            step,
            message: format!("the gradient norm is {grad_norm}"),
        });
    }
    let lr = run.schedule.lr(step);
    optimizer.step(lr);
    let n = group.len() as f64;
    let mut line = json!({
        "step": step + 1,
        "loss": loss_sum / n,
        "lr": lr,
        "grad_norm": grad_norm,
        "tokens": tokens,
    });
    for (name, v) in parts {
        line[name] = json!(v / n);
    }
    Ok((line, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_memory_step_names_the_knobs_that_help() {
        let opts = TrainOptions::default();
        let panic: Box<dyn std::any::Any + Send> = Box::new(
            "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\\nframe #0 ...\")"
                .to_string(),
        );
        let message = out_of_memory(panic, 4, &opts).to_string();
        assert!(
            message.starts_with("train: step 5: the GPU ran out of memory"),
            "{message}"
        );
        for knob in [
            "lora",
            "grad_checkpoint",
            "batch_size",
            "grad_accum",
            "max_len",
        ] {
            assert!(message.contains(knob), "{knob} missing: {message}");
        }
        assert!(
            !message.contains("frame #0"),
            "no libtorch backtrace: {message}"
        );
        // Knobs already in use are not suggested again.
        let lean = TrainOptions {
            lora: Some(crate::model::lora::LoraConfig::default()),
            grad_checkpoint: true,
            batch_size: 1,
            ..TrainOptions::default()
        };
        let cpu: Box<dyn std::any::Any + Send> =
            Box::new("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes");
        let message = out_of_memory(cpu, 0, &lean).to_string();
        assert!(message.contains("the CPU ran out of memory"), "{message}");
        assert!(
            !message.contains("`lora") && !message.contains("`grad_checkpoint"),
            "{message}"
        );
    }

    #[test]
    fn other_panics_keep_unwinding() {
        let caught = std::panic::catch_unwind(|| {
            out_of_memory(Box::new("index out of range"), 0, &TrainOptions::default())
        });
        assert!(caught.is_err());
    }
}
