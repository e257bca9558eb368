//! LoRA against PEFT (tests/fixtures/lora, made by make_lora_fixtures.py with transformers +
//! peft): the same adapter gives the same logits, merged or not; one training step from the
//! same start gives the same gradients and the same AdamW update; the adapter we save is
//! PEFT's layout; a LoRA run trains only its adapters, checkpoints only them, and resumes to
//! the uninterrupted run's adapters.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rlmec::model::batch::Batch;
use rlmec::model::lora::LoraConfig;
use rlmec::model::{LoadOptions, Model, peft};
use rlmec::train::adamw::{AdamW, AdamWConfig};
use rlmec::train::examples::Example;
use rlmec::train::objective::{self, Sft};
use rlmec::train::schedule::Schedule;
use rlmec::train::{TrainOptions, tokens, train_examples};
use serde_json::Value;
use tch::{Kind, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora")
}

fn reference() -> Value {
    common::read_json(&fixtures().join("reference.json"))
}

fn tiny() -> Model {
    tch::set_num_threads(1);
    Model::load(&common::model_fixture("tiny-llama"), LoadOptions::default()).unwrap()
}

fn with_peft_adapter() -> Model {
    let mut m = tiny();
    m.load_adapter(&fixtures().join("peft-adapter")).unwrap();
    m
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Tensor> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let xs: Vec<f32> = common::floats(r).iter().map(|&x| x as f32).collect();
            Tensor::from_slice(&xs)
        })
        .collect();
    Tensor::stack(&rows, 0)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Logits of every position of one unpadded prompt.
fn logits(m: &Model, prompt: &[i64]) -> Tensor {
    let batch = Batch::right_padded(&[prompt.to_vec()], m.pad_id(), m.device());
    tch::no_grad(|| m.net().logits(&m.hidden(&batch)).squeeze_dim(0))
}

fn check_logits(m: &Model, r: &Value, key: &str) {
    for (i, p) in r["prompts"].as_array().unwrap().iter().enumerate() {
        let diff = max_diff(&logits(m, &common::ids(p)), &matrix(&r[key][i]));
        assert!(diff < 1e-4, "{key}[{i}]: max diff {diff}");
    }
}

#[test]
fn a_peft_adapter_gives_peft_logits_attached_and_merged() {
    let r = reference();
    let mut m = with_peft_adapter();
    let config = &m.lora().unwrap().config;
    assert_eq!((config.r, config.alpha), (4, 8.0));
    check_logits(&m, &r, "logits");
    // The inference path (oneDNN packs the frozen base weights) agrees too: run it twice.
    check_logits(&m, &r, "logits");
    assert!(m.merge_lora());
    assert!(m.lora().is_none());
    check_logits(&m, &r, "merged_logits");
    let base = tiny();
    let p = common::ids(&r["prompts"][0]);
    let diff = max_diff(&logits(&base, &p), &matrix(&r["base_logits"][0]));
    assert!(diff < 1e-4, "the base itself: {diff}");
}

/// The fixture's training rows as examples (the loss is on the output tokens only).
fn train_examples_of(r: &Value) -> Vec<Example> {
    r["train"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| Example {
            prompt: common::ids(&row["prompt"]),
            seq: common::ids(&row["output"]),
            rl: None,
            reg: None,
        })
        .collect()
}

fn assert_params(m: &Model, want: &Value, tol: f64, what: &str) {
    let params = &m.lora().unwrap().params;
    let want = want.as_object().unwrap();
    assert_eq!(want.len(), params.len(), "{what}: adapter count");
    for (key, values) in want {
        let name = key.strip_prefix("base_model.model.").unwrap();
        let values = values.get("values").unwrap_or(values);
        let got = Vec::<f32>::try_from(params[name].flatten(0, -1)).unwrap();
        common::assert_close(
            &got,
            &common::floats(values),
            tol,
            &format!("{what} {name}"),
        );
    }
}

#[test]
fn one_training_step_gives_peft_gradients_and_update() {
    let r = reference();
    let t = &r["train"];
    let m = with_peft_adapter();
    let examples = train_examples_of(&r);
    let refs: Vec<&Example> = examples.iter().collect();
    let mut opt = AdamW::new(
        &m.trainable(),
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
    );
    assert_eq!(opt.state().len(), 2 * 28, "moments for the adapters only");
    let lr = t["optimizer"]["lr"].as_f64().unwrap();
    for (i, expect) in [t, &t["step2"]].into_iter().enumerate() {
        opt.zero_grad();
        let loss = objective::sft_loss(&tokens::forward(&m, &refs)).total;
        let want = expect["loss"].as_f64().unwrap();
        assert!(
            (loss.double_value(&[]) - want).abs() < 1e-5,
            "step {i} loss"
        );
        loss.backward();
        if i == 0 {
            let grads: HashMap<String, Tensor> = m
                .lora()
                .unwrap()
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.grad()))
                .collect();
            for (key, g) in t["grads"].as_object().unwrap() {
                let name = key.strip_prefix("base_model.model.").unwrap();
                let got = Vec::<f32>::try_from(grads[name].flatten(0, -1)).unwrap();
                common::assert_close(&got, &common::floats(&g["values"]), 1e-4, name);
            }
            for (name, w) in m.var_store().variables() {
                assert!(!w.grad().defined(), "{name}: the base is frozen");
            }
        }
        let norm = opt.clip_grad_norm(1.0);
        let want_norm = expect["grad_norm"].as_f64().unwrap();
        assert!(
            (norm - want_norm).abs() < 1e-4 * want_norm,
            "step {i} grad norm {norm}"
        );
        opt.step(lr);
        assert_params(&m, &expect["after_step"], 1e-4, &format!("step {i}"));
    }
}

#[test]
fn the_adapter_we_save_is_pefts_layout_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = with_peft_adapter();
    let saved = dir.path().join("adapter");
    m.save_adapter(&saved).unwrap();
    let config = common::read_json(&saved.join(peft::CONFIG_FILE));
    for (key, want) in [
        ("peft_type", "\"LORA\""),
        ("r", "4"),
        ("lora_alpha", "8.0"),
        ("bias", "\"none\""),
        ("use_dora", "false"),
    ] {
        assert_eq!(config[key].to_string(), want, "{key}");
    }
    assert_eq!(config["target_modules"].as_array().unwrap().len(), 7);
    let mut names = Vec::new();
    rlmec::model::hf::read_safetensors(&saved.join(peft::WEIGHTS_FILE), |name, _| {
        names.push(name.to_string());
        Ok(())
    })
    .unwrap();
    assert_eq!(names.len(), 28);
    assert!(names.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".into()));
    let mut back = tiny();
    back.load_adapter(&saved).unwrap();
    check_logits(&back, &reference(), "logits");
    // The adapter names its base: loading the folder alone brings both.
    let whole = Model::load(&saved, LoadOptions::default()).unwrap();
    check_logits(&whole, &reference(), "logits");
}

/// What `tests/fixtures/lora/saved-by-rlmec/` holds: the PEFT adapter as we save it, with our
/// logits, which `make_lora_fixtures.py --check-ours` loads into PEFT. Rewritten by
/// `cargo test --release --test lora -- --ignored write_saved_by_rlmec`.
#[test]
#[ignore]
fn write_saved_by_rlmec() {
    let m = with_peft_adapter();
    let dir = fixtures().join("saved-by-rlmec");
    m.save_adapter(&dir).unwrap();
    let r = reference();
    let logits: Vec<Value> = r["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let l = logits(&m, &common::ids(p));
            let rows: Vec<Vec<f32>> = (0..l.size()[0])
                .map(|i| Vec::<f32>::try_from(l.get(i)).unwrap())
                .collect();
            serde_json::to_value(rows).unwrap()
        })
        .collect();
    let out = serde_json::json!({"prompts": r["prompts"], "logits": logits});
    rlmec::files::write_json(&dir.join("rlmec_logits.json"), &out).unwrap();
}

#[test]
fn the_committed_adapter_pefts_check_read_is_what_we_write_now() {
    let dir = tempfile::tempdir().unwrap();
    let now = dir.path().join("now");
    with_peft_adapter().save_adapter(&now).unwrap();
    let committed = fixtures().join("saved-by-rlmec");
    let mut config = common::read_json(&now.join(peft::CONFIG_FILE));
    let mut old = common::read_json(&committed.join(peft::CONFIG_FILE));
    config["base_model_name_or_path"] = Value::Null;
    old["base_model_name_or_path"] = Value::Null;
    assert_eq!(
        config, old,
        "adapter_config.json changed: regenerate the fixture"
    );
    let read = |p: &Path| {
        let mut m = HashMap::new();
        rlmec::model::hf::read_safetensors(&p.join(peft::WEIGHTS_FILE), |n, t| {
            m.insert(n.to_string(), t);
            Ok(())
        })
        .unwrap();
        m
    };
    let (a, b) = (read(&now), read(&committed));
    assert_eq!(a.len(), b.len());
    for (name, t) in a {
        assert!(t.equal(&b[&name]), "{name} changed: regenerate the fixture");
    }
}

/// SFT records on the tiny model's vocabulary: (prompt, output) pairs of varied lengths.
fn sft_examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            prompt: (0..3 + i % 4)
                .map(|j| 3 + ((i * 7 + j * 13) % 380) as i64)
                .collect(),
            seq: (0..4 + i % 3)
                .map(|j| 3 + ((i * 11 + j * 5) % 380) as i64)
                .collect(),
            rl: None,
            reg: None,
        })
        .collect()
}

fn lora_opts(out: &Path) -> TrainOptions {
    TrainOptions {
        epochs: 2,
        lr: 5e-3,
        batch_size: 2,
        grad_accum: 1,
        warmup_ratio: 0.0,
        schedule: Schedule::Linear,
        out: Some(out.to_path_buf()),
        checkpoint_every: 2,
        lora: Some(LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        }),
        ..TrainOptions::default()
    }
}

fn adapters(m: &Model) -> Vec<(String, Tensor)> {
    m.lora()
        .unwrap()
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.detach().copy()))
        .collect()
}

#[test]
fn a_lora_run_trains_adapters_only_checkpoints_them_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let base = tiny();
    let mut whole = tiny();
    let report = train_examples(&mut whole, sft_examples(7), &mut Sft, &lora_opts(&a)).unwrap();
    assert_eq!(report.total_steps, 8);
    // The base weights did not move; the adapters did (B starts at zero).
    for (name, w) in whole.var_store().variables() {
        assert!(
            w.equal(&base.var_store().variables()[&name]),
            "{name} changed"
        );
    }
    let trained = adapters(&whole);
    assert_eq!(trained.len(), 2 * 3 * 2);
    assert!(
        trained
            .iter()
            .any(|(n, t)| n.contains("lora_B") && t.abs().max().double_value(&[]) > 0.0)
    );
    // The final adapter, no model and no final checkpoint beside it; the periodic ones hold
    // the adapters and their optimiser state only.
    assert!(a.join(peft::WEIGHTS_FILE).is_file() && a.join("trained.json").is_file());
    assert!(!a.join("model.safetensors").exists());
    let steps: Vec<String> = std::fs::read_dir(a.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!steps.contains(&"step-00000008".to_string()), "{steps:?}");
    let ckpt = a.join("checkpoints/step-00000006");
    assert!(ckpt.join("adapter").join(peft::WEIGHTS_FILE).is_file());
    assert!(!ckpt.join("model").exists());
    let bytes = std::fs::metadata(ckpt.join("optimizer.safetensors"))
        .unwrap()
        .len();
    assert!(
        bytes < 100_000,
        "optimizer state of the adapters only: {bytes} bytes"
    );

    // Halted at step 3, resumed (from the step-2 checkpoint): the same adapters, bit for bit,
    // dropout masks included.
    let halted = TrainOptions {
        halt_at_step: Some(3),
        ..lora_opts(&b)
    };
    train_examples(&mut tiny(), sft_examples(7), &mut Sft, &halted).unwrap();
    let mut resumed = tiny();
    let r = train_examples(&mut resumed, sft_examples(7), &mut Sft, &lora_opts(&b)).unwrap();
    assert_eq!(r.resumed_from, Some(2));
    for ((name, x), (_, y)) in trained.iter().zip(adapters(&resumed)) {
        assert!(x.equal(&y), "{name} differs after resuming");
    }
    // Resumed once more, the finished run is done and its adapters are loaded.
    let mut again = tiny();
    let r = train_examples(&mut again, sft_examples(7), &mut Sft, &lora_opts(&b)).unwrap();
    assert_eq!((r.resumed_from, r.steps, r.tokens), (Some(8), 8, 0));
    for ((name, x), (_, y)) in trained.iter().zip(adapters(&again)) {
        assert!(
            x.equal(&y),
            "{name}: the finished run's adapter was not loaded"
        );
    }

    // `model_load(out)` brings the base and the trained adapter.
    let loaded = Model::load(&a, LoadOptions::default()).unwrap();
    let prompt = [5i64, 17, 99, 3, 250];
    let diff = max_diff(&logits(&loaded, &prompt), &logits(&whole, &prompt));
    assert!(diff < 1e-5, "{diff}");
}

/// Loss and every trained tensor's gradient after one backward, with or without recomputing
/// the layers.
fn loss_and_grads(m: &Model, checkpoint: bool) -> (f64, Vec<(String, Tensor)>) {
    let examples = sft_examples(4);
    let refs: Vec<&Example> = examples.iter().collect();
    let trained = m.trainable();
    for t in trained.values() {
        let mut g = t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let pass = rlmec::model::llama::TrainPass {
        checkpoint,
        dropout_seed: Some(42),
    };
    let mut batch = tokens::forward_with(m, &refs, pass);
    let loss = objective::sft_loss(&batch).total;
    loss.backward();
    if let Some(replay) = batch.replay.take() {
        replay.backward(m.net());
    }
    let mut grads: Vec<(String, Tensor)> = trained
        .into_iter()
        .map(|(k, v)| (k, v.grad().copy()))
        .collect();
    grads.sort_by(|x, y| x.0.cmp(&y.0));
    (loss.double_value(&[]), grads)
}

fn same_loss_and_grads(m: &Model, what: &str) {
    let (l0, g0) = loss_and_grads(m, false);
    let (l1, g1) = loss_and_grads(m, true);
    assert!((l0 - l1).abs() < 1e-5, "{what}: loss {l0} vs {l1}");
    for ((name, x), (_, y)) in g0.iter().zip(&g1) {
        assert!(x.defined() && y.defined(), "{what}: {name} has no gradient");
        let diff = max_diff(x, y);
        assert!(diff < 1e-5, "{what}: {name} gradient differs by {diff}");
    }
}

#[test]
fn gradient_checkpointing_gives_the_same_loss_and_gradients() {
    same_loss_and_grads(&tiny(), "full fine-tuning");
    let mut m = tiny();
    m.attach_lora(
        &LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.2,
            ..LoraConfig::default()
        },
        0,
    )
    .unwrap();
    // B starts at zero, which would leave A without gradient: give B values.
    for (name, t) in &m.lora().unwrap().params {
        if name.contains("lora_B") {
            tch::no_grad(|| {
                let _ = t.shallow_clone().normal_(0.0, 0.1);
            });
        }
    }
    same_loss_and_grads(&m, "LoRA with dropout");
}

#[test]
fn bad_lora_settings_and_adapters_are_refused_with_the_field() {
    let mut m = tiny();
    for (config, needle) in [
        (
            LoraConfig {
                r: 0,
                ..LoraConfig::default()
            },
            "lora.r",
        ),
        (
            LoraConfig {
                dropout: 1.0,
                ..LoraConfig::default()
            },
            "lora.dropout",
        ),
        (
            LoraConfig {
                targets: vec!["qkv".into()],
                ..LoraConfig::default()
            },
            "unknown module `qkv`",
        ),
    ] {
        let err = m.attach_lora(&config, 0).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("adapter");
    std::fs::create_dir(&copy).unwrap();
    let original = fixtures().join("peft-adapter");
    std::fs::copy(
        original.join(peft::WEIGHTS_FILE),
        copy.join(peft::WEIGHTS_FILE),
    )
    .unwrap();
    let config = common::read_json(&original.join(peft::CONFIG_FILE));
    for (key, value, needle) in [
        ("use_dora", serde_json::json!(true), "use_dora"),
        ("target_modules", serde_json::json!("q_proj"), "pattern"),
        ("r", serde_json::json!(8), "shape"),
        (
            "target_modules",
            serde_json::json!(["q_proj"]),
            "belongs to no adapter",
        ),
    ] {
        let mut changed = config.clone();
        changed[key] = value;
        rlmec::files::write_json(&copy.join(peft::CONFIG_FILE), &changed).unwrap();
        let err = m.load_adapter(&copy).unwrap_err().to_string();
        assert!(err.contains(needle), "{key}: {err}");
    }
    let mut bf16 = Model::load(
        &common::model_fixture("tiny-llama"),
        LoadOptions {
            dtype: rlmec::model::Dtype::Bf16,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    bf16.load_adapter(&original).unwrap();
    let p = common::ids(&reference()["prompts"][0]);
    let (got, want) = (logits(&bf16, &p), matrix(&reference()["logits"][0]));
    let rel = max_diff(&got.to_kind(Kind::Float), &want) / want.abs().max().double_value(&[]);
    assert!(
        rel < 0.05,
        "bf16 base with f32 adapters: relative diff {rel}"
    );
}
