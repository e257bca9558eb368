//! The knobs that run the whole procedure in seconds: the synthetic math task and a policy
//! trained from scratch with a few thousand parameters.

/// The knobs that make a shipped script tiny (one pass of everything, a 1-layer policy).
pub const TINY: &[&str] = &[
    "kind=math",
    "n_train=8",
    "n_test=8",
    "synthetic.n_pretrain=256",
    "synthetic.min_steps=1",
    "synthetic.max_steps=1",
    "synthetic.max_operand=5",
    "synthetic.ops=+",
    "scratch.model.vocab_size=300",
    "scratch.model.hidden_size=64",
    "scratch.model.intermediate_size=128",
    "scratch.model.num_hidden_layers=1",
    "scratch.model.num_attention_heads=2",
    "scratch.train.epochs=40",
    "sampling.n=2",
    "sampling.temperature=0.3",
    "sampling.max_new_tokens=48",
    "rewards.per_problem=2", // the policy's correct samples make records whatever the GRM does
    "grm_train.epochs=1",
    "grm_rewrite.max_new_tokens=48",
    "rl.epochs=1",
    "baseline.epochs=1",
    "evaluation.max_new_tokens=48",
];

/// `--set K` for each knob.
pub fn sets(knobs: &[&str]) -> Vec<String> {
    knobs
        .iter()
        .flat_map(|k| ["--set".to_string(), k.to_string()])
        .collect()
}
