//! Loading and saving: the Hugging Face layout round trip, bf16, and every kind of bad
//! checkpoint giving an error that names the file and the field or tensor.

mod common;

use std::fs;
use std::path::Path;

use rlmec::model::batch::Batch;
use rlmec::model::{Dtype, LoadOptions, Model};
use tch::{Kind, Tensor};

use common::{floats, ids, model_fixture, read_json};

fn load(path: &Path) -> Result<Model, String> {
    tch::set_num_threads(1);
    Model::load(path, LoadOptions::default()).map_err(|e| e.to_string())
}

/// A copy of a fixture directory that a test may break.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(model_fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn logits(model: &Model, ids: &[i64]) -> Tensor {
    let batch = Batch::right_padded(&[ids.to_vec()], 0, model.device());
    model
        .net()
        .logits(&model.hidden(&batch))
        .to_kind(Kind::Float)
}

#[test]
fn save_then_load_is_bit_exact() {
    let original = load(&model_fixture("tiny-llama")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ckpt");
    original.save(&out).unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let reloaded = load(&out).unwrap();
    let (a, b) = (
        original.var_store().variables(),
        reloaded.var_store().variables(),
    );
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after the round trip");
    }
    // Saving records the dtype under both names transformers 4 and 5 read; nothing else changes.
    let without_dtype = |m: &Model| {
        let mut c = m.config.clone();
        c.extra.remove("dtype");
        c.extra.remove("torch_dtype");
        c
    };
    assert_eq!(without_dtype(&reloaded), without_dtype(&original));
    assert_eq!(reloaded.special, original.special);
    let text = "Options:\nyes\nno";
    assert_eq!(
        reloaded.tokenizer.encode(text).unwrap(),
        original.tokenizer.encode(text).unwrap()
    );
    // Saving over an existing checkpoint replaces it whole, leaving nothing beside it.
    original.save(&out).unwrap();
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_save_never_replaces_a_folder_holding_other_files() {
    let mut model = load(&model_fixture("tiny-llama")).unwrap();
    let adapter = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora/peft-adapter");
    model.load_adapter(&adapter).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(data.join("qa")).unwrap();
    fs::write(data.join("train.jsonl"), "{}\n").unwrap();
    for save in [Model::save, Model::save_adapter] {
        let err = save(&model, &data).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot save: ", data.display()))
                && err.contains("(qa/, train.jsonl)")
                && err.contains("save into a new or empty one"),
            "{err}"
        );
        assert!(data.join("train.jsonl").is_file() && data.join("qa").is_dir());
    }
    let file = dir.path().join("notes.txt");
    fs::write(&file, "mine").unwrap();
    let err = model.save(&file).unwrap_err().to_string();
    assert!(err.contains("a file is there, not a folder"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "mine");
    // An empty folder, or one holding a saved model, is written.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    model.save(&empty).unwrap();
    model.save(&empty).unwrap();
    assert!(empty.join("model.safetensors").is_file());
}

#[test]
fn what_we_save_is_what_transformers_loaded() {
    // tests/fixtures/model/saved-by-rlmec was written by `Model::save` from tiny-llama and
    // loaded by transformers in the fixture script, which recorded its logits there.
    let model = load(&model_fixture("tiny-llama")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(&dir.path().join("ckpt")).unwrap();
    let ours = fs::read(dir.path().join("ckpt/model.safetensors")).unwrap();
    let accepted = fs::read(model_fixture("saved-by-rlmec/model.safetensors")).unwrap();
    assert!(
        ours == accepted,
        "the saved format changed since transformers last read it"
    );

    let reference = read_json(&model_fixture("saved-by-rlmec/transformers_logits.json"));
    let ids = ids(&reference["ids"]);
    let want: Vec<f64> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    let saved = load(&model_fixture("saved-by-rlmec")).unwrap();
    let got: Vec<f32> = Vec::try_from(logits(&saved, &ids).flatten(0, -1)).unwrap();
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(
        diff < 1e-4,
        "max |Δlogit| vs transformers on our checkpoint: {diff}"
    );
}

#[test]
fn bf16_runs_close_to_f32_and_saves_bf16() {
    tch::set_num_threads(1);
    let f32_model = load(&model_fixture("tiny-llama")).unwrap();
    let bf16 = Model::load(
        &model_fixture("tiny-llama"),
        LoadOptions {
            dtype: Dtype::Bf16,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let ids = [5, 17, 99, 210, 33, 7];
    let (a, b) = (logits(&f32_model, &ids), logits(&bf16, &ids));
    let diff = (&a - &b).abs().max().double_value(&[]);
    let scale = a.abs().max().double_value(&[]);
    assert!(
        diff < 0.05 * scale,
        "bf16 logits drift {diff} (scale {scale})"
    );
    let dir = tempfile::tempdir().unwrap();
    bf16.save(&dir.path().join("b")).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("b/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    let reloaded = Model::load(
        &dir.path().join("b"),
        LoadOptions {
            dtype: Dtype::Bf16,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    for (name, t) in reloaded.var_store().variables() {
        assert_eq!(t.kind(), Kind::BFloat16, "{name}");
        assert!(t.equal(&bf16.var_store().variables()[&name]), "{name}");
    }
}

#[test]
fn a_missing_weight_file_is_named() {
    let dir = copy_of("tiny-mistral");
    fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        err.contains(&dir.path().display().to_string()) && err.contains("no weights"),
        "{err}"
    );
}

#[test]
fn a_truncated_weight_file_is_named() {
    let dir = copy_of("tiny-mistral");
    let file = dir.path().join("model.safetensors");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.starts_with(&file.display().to_string()), "{err}");
}

#[test]
fn a_missing_shard_is_named() {
    let dir = copy_of("tiny-llama-sharded");
    let shard = dir.path().join("model-00003-of-00006.safetensors");
    fs::remove_file(&shard).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("model-00003-of-00006.safetensors"), "{err}");
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(config.as_object_mut().unwrap());
    fs::write(&path, config.to_string()).unwrap();
}

#[test]
fn an_unknown_architecture_is_named() {
    let dir = copy_of("tiny-mistral");
    edit_config(dir.path(), |c| {
        c.insert("model_type".into(), "gpt2".into());
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        err.contains("config.json") && err.contains("unknown variant `gpt2`"),
        "{err}"
    );
}

#[test]
fn a_config_missing_a_field_is_named() {
    let dir = copy_of("tiny-mistral");
    edit_config(dir.path(), |c| {
        c.remove("hidden_size");
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        err.contains("config.json") && err.contains("missing field `hidden_size`"),
        "{err}"
    );
}

#[test]
fn weights_that_do_not_fit_the_config_are_named() {
    let dir = copy_of("tiny-mistral");
    edit_config(dir.path(), |c| {
        c.insert("intermediate_size".into(), 96.into());
    });
    let err = load(dir.path()).unwrap_err();
    assert!(err.contains("mlp.") && err.contains("96"), "{err}");

    let dir = copy_of("tiny-mistral");
    edit_config(dir.path(), |c| {
        c.insert("num_hidden_layers".into(), 3.into());
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        err.contains("missing from the checkpoint") && err.contains("model.layers.2."),
        "{err}"
    );
}

#[test]
fn a_path_that_is_no_model_says_what_to_do() {
    let err = load(Path::new("data/models/nope.gguf")).unwrap_err();
    assert!(
        err.contains("data/models/nope.gguf") && err.contains("make setup"),
        "{err}"
    );
}

#[test]
fn a_truncated_safetensors_file_is_named_as_such() {
    let dir = copy_of("tiny-llama");
    let weights = dir.path().join("model.safetensors");
    let bytes = fs::read(&weights).unwrap();
    fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        err.contains(&weights.display().to_string())
            && err.contains("truncated or not a safetensors file"),
        "{err}"
    );
}
