//! Training natives: `m.train(records, options)` and `rlmec_loss(m, record)`, and the bridge
//! that lets a script closure be the objective.

use rhai::plugin::*;
use rhai::{FnPtr, Map};

use super::engine::Domain;
use super::errors::{closure_arity, message};
use super::tensor::TensorHandle;
use crate::train::TrainReport;
use crate::train::objective::{Loss, Objective};
use crate::train::tokens::TokenBatch;

pub const DOMAIN: Domain = Domain {
    name: "train",
    module: || exported_module!(train_api),
    extra: |_| {},
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The map of per-token tensors a script objective receives.
fn batch_map(b: &TokenBatch) -> Map {
    let mut m = Map::new();
    let mut put = |name: &str, t: &tch::Tensor| {
        m.insert(
            name.into(),
            Dynamic::from(TensorHandle::new(t.shallow_clone())),
        );
    };
    put("logp", &b.logp);
    put("mask", &b.mask);
    put("ce", &(-&b.logp));
    let optional = [
        ("reward", &b.reward),
        ("ref_logp", &b.ref_logp),
        ("reg_logp", &b.reg_logp),
        ("reg_weight", &b.reg_weight),
        ("reg_mask", &b.reg_mask),
    ];
    for (name, t) in optional {
        if let Some(t) = t {
            put(name, t);
        }
    }
    if let Some(reg_logp) = &b.reg_logp {
        put("reg_ce", &(-reg_logp));
    }
    m
}

/// A scalar tensor from an objective's result (`what` names the part in errors): a
/// one-element tensor, or a number.
fn scalar(v: &Dynamic, what: &str) -> Result<tch::Tensor, String> {
    if let Some(t) = v.read_lock::<TensorHandle>() {
        let t = t.get();
        return if t.numel() == 1 {
            Ok(t.reshape([] as [i64; 0]))
        } else {
            Err(format!(
                "{what} must be a scalar tensor, got shape {:?}",
                t.size()
            ))
        };
    }
    v.as_float()
        .or_else(|_| v.as_int().map(|i| i as f64))
        .map(tch::Tensor::from)
        .map_err(|_| format!("{what} must be a Tensor, got {}", v.type_name()))
}

/// A script closure as the objective: called with the batch map, it returns a scalar
/// tensor or a map `#{loss: tensor, <part>: tensor or number, ...}`.
struct ScriptObjective<'a> {
    context: &'a NativeCallContext<'a>,
    function: FnPtr,
}

impl Objective for ScriptObjective<'_> {
    fn loss(&mut self, batch: &TokenBatch) -> Result<Loss, String> {
        let out: Dynamic = self
            .function
            .call_within_context(self.context, (batch_map(batch),))
            .map_err(|e| {
                let what = "the objective closure";
                message(&closure_arity(
                    e,
                    &self.function,
                    what,
                    "`|b| ...` (b: the batch)",
                ))
            })?;
        if let Some(map) = out.read_lock::<Map>() {
            let total = map
                .get("loss")
                .ok_or("the objective returned a map without `loss`")?;
            let total = scalar(total, "`loss`")?;
            let mut parts = Vec::new();
            for (name, v) in map.iter().filter(|(k, _)| k.as_str() != "loss") {
                parts.push((name.to_string(), scalar(v, &format!("`{name}`"))?.detach()));
            }
            return Ok(Loss { total, parts });
        }
        Ok(Loss {
            total: scalar(&out, "the objective's result")?,
            parts: Vec::new(),
        })
    }

    fn name(&self) -> String {
        format!("script:{}", self.function.fn_name())
    }
}

/// What `m.train` returns: the report, the last step's loss and the throughput.
fn report_map(report: &TrainReport) -> Map {
    let int = |n: usize| Dynamic::from_int(n as i64);
    let last_loss = report.history.last().and_then(|l| l["loss"].as_f64());
    let history: rhai::Array = report
        .history
        .iter()
        .map(|line| rhai::serde::to_dynamic(line).unwrap_or_default())
        .collect();
    let out = report.out.as_ref();
    Map::from_iter([
        ("steps".into(), int(report.steps)),
        ("total_steps".into(), int(report.total_steps)),
        ("loss".into(), last_loss.unwrap_or(f64::NAN).into()),
        ("history".into(), history.into()),
        ("skipped".into(), int(report.skipped)),
        (
            "resumed_from".into(),
            report.resumed_from.map_or(Dynamic::UNIT, int),
        ),
        ("halted".into(), report.halted.into()),
        ("seconds".into(), report.seconds.into()),
        ("tokens".into(), int(report.tokens)),
        (
            "tokens_per_s".into(),
            (report.tokens as f64 / report.seconds.max(1e-9)).into(),
        ),
        (
            "out".into(),
            out.map_or(Dynamic::UNIT, |p| p.to_string_lossy().into_owned().into()),
        ),
    ])
}

/// Training: supervised fine-tuning, RLMEC's token-level objective, or an objective written
/// as a closure over per-token tensors; checkpoints that resume exactly.
#[export_module]
pub mod train_api {
    use super::{Res, ScriptObjective, report_map};
    use crate::script::json::to_json;
    use crate::script::model::ModelHandle;
    use crate::script::options::Options;
    use crate::train::objective::{self, Objective, RlmecParams};
    use crate::train::{TrainOptions, examples, tokens, train as run_train};

    /// Train `m` in place on `records` and return what happened.
    ///
    /// Records: `{input, output}` (supervised: loss on the output tokens + EOS) or the public
    /// trainer's `{input, output, regular, reward, ref_prob, weight_regular}` (RLMEC).
    ///
    /// Options:
    /// - `objective`: `"rlmec"` (when not given), `"sft"` or a closure `|batch| ...` returning
    ///   a scalar tensor or `#{loss, ...parts}`; `batch` holds `logp`, `mask`, `ce`, and for
    ///   RLMEC records `reward`, `ref_logp`, `reg_logp`, `reg_ce`, `reg_weight`, `reg_mask`,
    ///   each [batch, tokens].
    /// - The optimisation: `epochs` over the records; `lr`, the peak learning rate, reached
    ///   after the first `warmup_ratio` of the steps and then decayed as `schedule` says
    ///   (`"cosine"`, `"linear"` or `"constant"`); `batch_size` examples per micro-batch
    ///   (losses are normalised per micro-batch), `grad_accum` micro-batches per optimiser
    ///   step; AdamW's `adam_beta1`, `adam_beta2`, `adam_eps` and `weight_decay`;
    ///   `max_grad_norm` clips the global gradient norm (0: no clipping); `max_len` prompt +
    ///   sequence tokens per row (longer rows are cut); RLMEC's `clip_eps` (ε of the ratio's
    ///   clip) and `reg_weight` (λ, the weight of the imitation term); `seed` of the batch
    ///   order, dropout and new adapters.
    /// - The run: `out` is its directory (final model in Hugging Face layout,
    ///   `metrics.jsonl`, `checkpoints/`); a checkpoint every `checkpoint_every` optimiser
    ///   steps (0: only at the end), the newest `keep_checkpoints` kept; `resume` continues
    ///   from the newest checkpoint in `out`; `halt_at_step` stops there as if killed (no
    ///   final save).
    /// - Memory: `grad_checkpoint` recomputes each decoder layer in the backward pass
    ///   (activation memory of one layer instead of all, about a third more compute).
    /// - `lora: #{r, alpha, dropout, targets}` trains LoRA adapters beside the layers
    ///   `targets` names (attention and MLP projections, by their Hugging Face names), of
    ///   rank `r`, their update scaled by `alpha` / `r`, with `dropout` on their input, every
    ///   weight of `m` frozen (any field may be left out for its default; `r: 0` means no
    ///   LoRA) — adapters already on `m` with the same settings go on training, others are
    ///   merged first; without `lora`, every weight is trained (adapters on `m` merged
    ///   first). A LoRA run's `out` holds the adapter in PEFT's layout (`model_load(out)`
    ///   loads it onto its base), its checkpoints the adapters and their optimiser state
    ///   only.
    ///
    /// Defaults (the paper's RL settings): {defaults:train}.
    /// The fields of `lora` default to {defaults:lora}.
    ///
    /// Returns `#{steps, total_steps, loss, history, skipped, resumed_from, halted, seconds,
    /// tokens, tokens_per_s, out}`; `history` has one map per step (step, epoch, loss and its
    /// parts, lr, grad_norm, tokens, tokens_per_s).
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let data = [#{input: "2 + 2 =", output: " 4"}, #{input: "3 + 3 =", output: " 6"}];
    /// let stats = m.train(data, #{objective: "sft", epochs: 2, lr: 1e-3, batch_size: 2, grad_accum: 1});
    /// print(`${stats.steps} steps, loss ${stats.loss}`);
    /// // LoRA adapters (rank 8 on the attention projections), layers recomputed in backward:
    /// m.train(data, #{objective: "sft", epochs: 1, lr: 1e-3, lora: #{r: 8, targets: ["q_proj", "v_proj"]},
    ///                 grad_checkpoint: true});
    /// m.save_adapter("/tmp/rlmec-doc-adapter");
    /// // The same objective as a closure:
    /// m.train(data, #{objective: |b| (b.ce * b.mask).sum() / max(b.mask.sum(), 1.0), epochs: 1, lr: 1e-3});
    /// ```
    #[rhai_fn(name = "train", return_raw)]
    pub fn train(
        context: NativeCallContext,
        model: &mut ModelHandle,
        records: rhai::Array,
        options: rhai::Map,
    ) -> Res<rhai::Map> {
        let mut o = Options::new("train", options);
        let objective = o.take_dynamic("objective");
        let opts: TrainOptions = o.parse()?;
        o.finish()?;
        let mut builtin;
        let mut script;
        let objective: &mut dyn Objective = match objective {
            Some(v) if v.is_fnptr() => {
                script = ScriptObjective {
                    context: &context,
                    function: v.cast::<rhai::FnPtr>(),
                };
                &mut script
            }
            v => {
                let name = v.map_or(Ok("rlmec".into()), Dynamic::into_string).map_err(|t| {
                    format!("train: option `objective` must be \"sft\", \"rlmec\" or a closure, got {t}")
                })?;
                builtin = objective::named(&name, opts.rlmec).map_err(|e| format!("train: {e}"))?;
                builtin.as_mut()
            }
        };
        let records: Vec<serde_json::Value> =
            crate::script::io::from_array("train", "record", &records)?;
        let mut model = model.native("train")?;
        let report =
            run_train(&mut model, &records, objective, &opts).map_err(|e| e.to_string())?;
        Ok(report_map(&report))
    }

    /// RLMEC's loss for one record (`{input, output, regular, reward, ref_prob,
    /// weight_regular}`) under `m`, without any update: `#{loss, loss_rl, loss_reg}` with the
    /// paper's ε and λ (the defaults of `rlmec_loss(model, record, options)`) — the reference
    /// a script-defined objective can be checked against.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let n = m.encode(" 2").len() + 1;   // one value per token of output + EOS
    /// let reward = []; reward.pad(n, 0.2);
    /// let ref_prob = []; ref_prob.pad(n, -1.5);
    /// let weight = []; weight.pad(n, 0.5);
    /// let r = #{input: "Q: 1 + 1?", output: " 2", regular: " 2",
    ///           reward: reward, ref_prob: ref_prob, weight_regular: weight};
    /// let l = rlmec_loss(m, r);
    /// print(`${l.loss} = ${l.loss_rl} + ${l.loss_reg}`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn rlmec_loss(model: ModelHandle, record: rhai::Map) -> Res<rhai::Map> {
        rlmec_loss_with(model, record, rhai::Map::new())
    }

    /// [`rlmec_loss`] with options `clip_eps` (ε, the clip of the probability ratio) and
    /// `reg_weight` (λ, the weight of the imitation term). Defaults (the paper's):
    /// {defaults:rlmec}.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let n = m.encode(" 2").len() + 1;
    /// let reward = []; reward.pad(n, -0.1);
    /// let ref_prob = []; ref_prob.pad(n, -1.5);
    /// let weight = []; weight.pad(n, 1.0);
    /// let r = #{input: "Q: 1 + 1?", output: " 2", regular: " 2",
    ///           reward: reward, ref_prob: ref_prob, weight_regular: weight};
    /// let l = rlmec_loss(m, r, #{clip_eps: 0.2, reg_weight: 0.0});
    /// ```
    #[rhai_fn(name = "rlmec_loss", return_raw)]
    pub fn rlmec_loss_with(
        model: ModelHandle,
        record: rhai::Map,
        options: rhai::Map,
    ) -> Res<rhai::Map> {
        let mut o = Options::new("rlmec_loss", options);
        let params: RlmecParams = o.parse()?;
        o.finish()?;
        params.validate().map_err(|e| format!("rlmec_loss: {e}"))?;
        let record = to_json(&record.into(), "rlmec_loss: the record")?;
        let model = model.native("rlmec_loss")?;
        let example = examples::tokenize(&model, &[record], examples::RecordKind::Rlmec)
            .map_err(|e| format!("rlmec_loss: {e}"))?
            .remove(0);
        let loss = crate::grad::no_grad(|| {
            let batch = tokens::forward(&model, &[&example]);
            objective::rlmec_loss(&batch, params)
        })
        .map_err(|e| format!("rlmec_loss: {e}"))?;
        let mut m = rhai::Map::new();
        m.insert("loss".into(), loss.total.double_value(&[]).into());
        for (name, t) in loss.parts {
            m.insert(name.into(), t.double_value(&[]).into());
        }
        Ok(m)
    }
}
