//! Models made from scratch: the byte-level BPE tokenizer trained on text (exact round trips,
//! reproducible), `model_new` (seeded initialisation, save/load round trip) and a short
//! from-scratch SFT run that learns.

use rlmec::generate::score::score;
use rlmec::generate::{GenerateOptions, Request, generate};
use rlmec::model::scratch::{self, ScratchConfig};
use rlmec::model::{LoadOptions, Model};
use rlmec::script::model::ModelHandle;
use rlmec::script::{ScriptContext, build_engine};
use rlmec::tokenize::TextTokenizer;
use rlmec::tokenize::train::{EOS_ID, EOS_TOKEN, train_bpe};
use rlmec::train::objective;
use rlmec::train::{TrainOptions, train};
use serde_json::{Value, json};

/// `a op b = c` lines from a fixed linear congruential stream.
fn arithmetic(n: usize) -> Vec<(String, String)> {
    let mut x: u64 = 0x5eed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (a, b) = ((x >> 33) % 100, (x >> 17) % 100);
            if (x >> 60).is_multiple_of(2) {
                (format!("{a} + {b} ="), format!(" {}", a + b))
            } else {
                (format!("{a} * {b} ="), format!(" {}", a * b))
            }
        })
        .collect()
}

fn corpus(n: usize) -> Vec<String> {
    arithmetic(n)
        .into_iter()
        .map(|(q, a)| format!("Q: what is {q}?\nA:{a}"))
        .collect()
}

fn tokenizer_json(tok: &TextTokenizer) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    tok.save(&path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn trained_tokenizer_round_trips_any_text() {
    let texts = corpus(300);
    let tok = train_bpe(&texts, 400).unwrap();
    assert_eq!(tok.vocab_size(), 400, "enough text for every merge asked");
    assert_eq!(tok.token_id(EOS_TOKEN), Some(EOS_ID));
    let samples = [
        "Q: what is 12 + 7?\nA: 19",
        "",
        " ",
        "  leading and trailing spaces  ",
        "tabs\tand\r\nnewlines\n\n",
        "never seen: The quick brown fox jumps over the lazy dog!",
        "héllo wörld, naïve café — “quotes” … ½ ≠ ∞",
        "日本語のテキスト, 中文, 한국어, Ελληνικά, русский, עברית, العربية",
        "emoji 🎉👩‍👩‍👧‍👦🇫🇷 and a NUL \u{0} and controls \u{1}\u{7f}\u{feff}",
        "12 + 7 = 19<|endoftext|>the next document",
        "9999999999999999999 * 0.000001 = ?",
    ];
    for text in samples {
        let ids = tok.encode(text).unwrap();
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
    // Merges learnt from the corpus shorten its text; EOS inside text is the one token.
    let seen = "Q: what is 12 + 7?\nA: 19";
    assert!(tok.encode(seen).unwrap().len() * 3 < seen.len() * 2);
    let ids = tok.encode("1<|endoftext|>").unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], EOS_ID);
}

#[test]
fn trained_tokenizer_is_reproducible_and_never_too_large() {
    let texts = corpus(300);
    let a = tokenizer_json(&train_bpe(&texts, 600).unwrap());
    let b = tokenizer_json(&train_bpe(&texts, 600).unwrap());
    assert!(a == b, "two trainings on the same texts differ");
    let mut reversed = texts.clone();
    reversed.reverse();
    let c = tokenizer_json(&train_bpe(&reversed, 600).unwrap());
    assert!(a == c, "the order of the texts changed the tokenizer");
    let other = tokenizer_json(&train_bpe(&texts[..100], 600).unwrap());
    assert!(a != other);

    // Little text: fewer pairs occur twice than merges asked, so the vocabulary is smaller.
    let few = train_bpe(&["1 + 1 = 2".to_string(), "1 + 2 = 3".to_string()], 1000).unwrap();
    assert!(few.vocab_size() < 1000 && few.vocab_size() > 257);

    let e = train_bpe(&texts, 257).unwrap_err().to_string();
    assert!(e.contains("at least 258"), "{e}");
    let e = train_bpe(&[], 512).unwrap_err().to_string();
    assert!(e.contains("no text"), "{e}");
}

/// `model_new(config, texts)` from a script, on the arithmetic corpus.
fn eval_model_new(config: &str) -> Result<ModelHandle, String> {
    tch::set_num_threads(1);
    let engine = build_engine(ScriptContext::default());
    let texts = serde_json::to_string(&corpus(200)).unwrap();
    engine
        .eval::<ModelHandle>(&format!("model_new({config}, {texts})"))
        .map_err(|e| e.to_string())
}

/// A small model with `extra` options.
fn model_new(extra: &str) -> Result<ModelHandle, String> {
    eval_model_new(&format!(
        "#{{vocab_size: 320, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, \
         num_attention_heads: 4, num_key_value_heads: 2, {extra}}}"
    ))
}

fn model_new_err(extra: &str) -> String {
    model_new(extra).map(|_| ()).unwrap_err()
}

fn same_parameters(a: &Model, b: &Model) -> bool {
    let (va, vb) = (a.var_store().variables(), b.var_store().variables());
    va.len() == vb.len()
        && va
            .iter()
            .all(|(name, t)| vb.get(name).is_some_and(|u| t.equal(u)))
}

#[test]
fn model_new_is_seeded() {
    let a = model_new("seed: 7").unwrap();
    let b = model_new("seed: 7").unwrap();
    let c = model_new("seed: 8").unwrap();
    let (a, b, c) = (
        a.native("test").unwrap(),
        b.native("test").unwrap(),
        c.native("test").unwrap(),
    );
    assert!(same_parameters(&a, &b), "same seed, different parameters");
    assert!(!same_parameters(&a, &c), "different seeds, same parameters");

    // The config asked for, with the tokenizer's real size; EOS is token 0, no BOS.
    let cfg = &a.config;
    assert_eq!(
        (cfg.vocab_size, a.tokenizer.vocab_size()),
        (320, 320),
        "vocabulary"
    );
    assert_eq!(
        (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_kv_heads()),
        (64, 2, 2)
    );
    assert!(cfg.tie_word_embeddings);
    assert_eq!((a.special.bos, a.special.eos.clone()), (None, vec![EOS_ID]));
    assert_eq!(a.origin.to_str(), Some(scratch::ORIGIN));
    // embed 320·64 + 2 layers × (q 64·64 + k,v 2·64·32 + o 64·64 + mlp 3·64·128 + 2 norms)
    // + final norm.
    let per_layer = 64 * 64 * 2 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64;
    assert_eq!(a.num_parameters(), 320 * 64 + 2 * per_layer + 64);
    // Initialised with initializer_range: a weight's spread is about 0.02.
    let std = a.var_store().variables()["model.layers.0.mlp.up_proj.weight"].std(true);
    assert!((std.double_value(&[]) - 0.02).abs() < 0.002);
}

#[test]
fn model_new_reports_bad_options() {
    let e = model_new_err("hiden_size: 64");
    assert!(e.contains("unknown option(s) hiden_size"), "{e}");
    let e = eval_model_new("#{hidden_size: 64, num_attention_heads: 3}")
        .map(|_| ())
        .unwrap_err();
    assert!(e.contains("not a multiple"), "{e}");
    let e = eval_model_new("#{vocab_size: 100}")
        .map(|_| ())
        .unwrap_err();
    assert!(e.contains("at least 258"), "{e}");
    let e = model_new_err("dtype: \"f16\"");
    assert!(e.contains("unknown dtype"), "{e}");
    let engine = build_engine(ScriptContext::default());
    let e = engine
        .eval::<ModelHandle>("model_new(#{}, [\"1 + 1 = 2\", 3])")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("texts[1]: expected a string, got i64"), "{e}");
}

#[test]
fn model_new_saves_and_loads_back() {
    let made = model_new("seed: 3, tie_word_embeddings: false").unwrap();
    let made = made.native("test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch");
    made.save(&path).unwrap();
    let loaded = Model::load(&path, LoadOptions::default()).unwrap();

    // The loaded config also has what saving adds (`architectures`, `dtype`).
    let mut config = loaded.config.clone();
    assert_eq!(config.extra["architectures"], json!(["LlamaForCausalLM"]));
    config
        .extra
        .retain(|k, _| made.config.extra.contains_key(k));
    assert_eq!(config, made.config);
    assert_eq!(loaded.special, made.special);
    assert!(same_parameters(&made, &loaded));
    assert_eq!(
        tokenizer_json(&loaded.tokenizer),
        tokenizer_json(&made.tokenizer)
    );

    let prompts: Vec<Vec<i64>> = ["Q: what is 3 + 4?\nA:", "Q: what is 11 * 2"]
        .iter()
        .map(|p| made.tokenizer.encode(p).unwrap())
        .collect();
    let pairs: Vec<(Vec<i64>, Vec<i64>)> = prompts
        .iter()
        .map(|p| (p.clone(), made.tokenizer.encode(" 7 and more").unwrap()))
        .collect();
    assert_eq!(
        score(&made, &pairs, 2).unwrap(),
        score(&loaded, &pairs, 2).unwrap()
    );
    let requests: Vec<Request> = prompts
        .into_iter()
        .map(|prompt| Request {
            prompt,
            max_new_tokens: 12,
        })
        .collect();
    let opts = GenerateOptions::default();
    let ids = |m: &Model| -> Vec<Vec<i64>> {
        generate(m, &requests, &opts)
            .unwrap()
            .into_iter()
            .map(|g| g.ids)
            .collect()
    };
    assert_eq!(ids(&made), ids(&loaded));
}

#[test]
fn sft_from_scratch_learns_arithmetic() {
    tch::set_num_threads(1);
    let pairs = arithmetic(20);
    let texts: Vec<String> = pairs.iter().map(|(q, a)| format!("{q}{a}")).collect();
    let cfg = ScratchConfig {
        vocab_size: 300,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        seed: 1,
        ..ScratchConfig::default()
    };
    let mut m = scratch::from_texts(&cfg, &texts, LoadOptions::default()).unwrap();
    let records: Vec<Value> = pairs
        .iter()
        .map(|(q, a)| json!({"input": q, "output": a}))
        .collect();
    let opts = TrainOptions {
        epochs: 60,
        lr: 1e-2,
        batch_size: 10,
        grad_accum: 1,
        warmup_ratio: 0.05,
        ..TrainOptions::default()
    };
    let report = train(&mut m, &records, &mut objective::Sft, &opts).unwrap();
    let loss = |i: usize| report.history[i]["loss"].as_f64().unwrap();
    let (first, last) = (loss(0), loss(report.history.len() - 1));
    // A uniform guess over the vocabulary costs ln(300) ≈ 5.7 nats per token.
    assert!(first > 4.5 && last < 0.5, "loss {first} -> {last}");
    // It answers its training questions greedily, and stops with EOS.
    let requests: Vec<Request> = pairs
        .iter()
        .map(|(q, _)| Request {
            prompt: m.tokenizer.encode(q).unwrap(),
            max_new_tokens: 8,
        })
        .collect();
    let outs = generate(&m, &requests, &GenerateOptions::default()).unwrap();
    for (g, (q, a)) in outs.iter().zip(&pairs) {
        assert_eq!(
            (g.text.as_str(), g.finish.as_str()),
            (a.as_str(), "eos"),
            "{q}"
        );
    }
}
