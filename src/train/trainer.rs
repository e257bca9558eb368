//! The training loop: micro-batches → loss → gradients accumulated over `grad_accum`
//! micro-batches → clip → AdamW step at the scheduled rate → metrics, checkpoint.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use super::TrainError;
use super::adamw::AdamW;
use super::batching::epoch_batches;
use super::checkpoint::{self, Position};
use super::examples::{self, Example, RecordKind};
use super::metrics::MetricsLog;
use super::objective::Objective;
use super::options::TrainOptions;
use super::out_of_memory::out_of_memory;
use super::schedule::LrSchedule;
use super::session::{Run, fingerprint};
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
        let outcome =
            crate::oom::catch(|| micro_batch(run, objective, &examples, pass, group.len(), step))
                .unwrap_or_else(|oom| Err(out_of_memory(oom, step, run.opts)));
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
