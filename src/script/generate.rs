//! Generation natives: continue prompts with a KV cache, score continuations.

use rhai::plugin::*;

use super::engine::Domain;
use super::model::tokens_of;
use super::options::Options;
use crate::engine::Engine;
use crate::generate::{Budget, Request};

pub const DOMAIN: Domain = Domain {
    name: "generate",
    module: || exported_module!(generate_api),
    extra: |_| {},
};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A prompt of `generate`: a string, token ids, or `#{prompt, max_new_tokens}` with its own
/// budget (`budget` otherwise).
fn request(engine: &dyn Engine, what: &str, prompt: &Dynamic, budget: Budget) -> Res<Request> {
    let Some(map) = prompt.read_lock::<rhai::Map>() else {
        return Ok(Request {
            prompt: tokens_of(engine, what, prompt)?,
            max_new_tokens: budget.max_new_tokens,
        });
    };
    let mut o = Options::new(what, map.clone());
    let prompt = o.take_dynamic("prompt");
    let budget = o.parse_over(budget)?;
    o.finish()?;
    let prompt = prompt.ok_or_else(|| format!("{what}: missing `prompt`"))?;
    Ok(Request {
        prompt: tokens_of(engine, what, &prompt)?,
        max_new_tokens: budget.max_new_tokens,
    })
}

/// Generation and scoring: continuations of prompts (greedy or sampled, batched with a KV
/// cache, cut at stop strings) and the log-probabilities of given continuations.
#[export_module]
pub mod generate_api {
    use super::{Res, request};
    use crate::generate::score::ScoreOptions;
    use crate::generate::{Budget, GenerateOptions};
    use crate::script::model::tokens_of;
    use crate::script::model::{ModelHandle, float_array, int_array};
    use crate::script::options::Options;

    /// A loaded language model (`model_load`).
    type Model = ModelHandle;

    /// Generate a continuation of each prompt, greedily with the default options.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// print(m.generate(["Question: what is"])[0].text);
    /// ```
    #[rhai_fn(name = "generate", pure, return_raw)]
    pub fn generate_default(
        model: &mut Model,
        prompts: rhai::Array,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        generate(model, prompts, rhai::Map::new())
    }

    /// Generate a continuation of each prompt, batched with a KV cache. A prompt is a string,
    /// an array of token ids, or `#{prompt, max_new_tokens}` for its own budget.
    ///
    /// Options: `max_new_tokens` (the budget of a prompt that gives none), `min_new_tokens`
    /// (EOS is not allowed before this many), `temperature` (0: greedy), `top_p` and `top_k`
    /// (nucleus and top-k filtering; 1.0 and 0 turn them off), `seed` (each prompt has its
    /// own stream, so a prompt samples the same tokens in any batch), `stop` (strings; the
    /// text is cut before the first), `batch_size` (prompts decoded together).
    /// Defaults: {defaults:generate}.
    ///
    /// Each result is `#{text, ids, logprobs, finish}`: `ids`/`logprobs` cover every
    /// generated token (the model's own log-probabilities, temperature 1), `text` leaves
    /// out the EOS and everything from the first stop string, `finish` is `"eos"`, `"stop"`
    /// or `"length"`.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let outs = m.generate(["The answer", #{prompt: "Options:", max_new_tokens: 4}],
    ///                       #{max_new_tokens: 8, temperature: 0.7, top_p: 0.95, seed: 1, stop: ["\n"]});
    /// for o in outs { print(`${o.finish}: ${o.text}`); }
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn generate(
        model: &mut Model,
        prompts: rhai::Array,
        options: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let mut o = Options::new("generate", options);
        let budget: Budget = o.parse()?;
        let opts: GenerateOptions = o.parse()?;
        o.finish()?;
        let engine = model.engine();
        let requests = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| request(&*engine, &format!("generate: prompt {i}"), p, budget))
            .collect::<Res<Vec<_>>>()?;
        let outs = engine
            .generate(&requests, &opts)
            .map_err(|e| format!("generate: {e}"))?;
        Ok(outs
            .into_iter()
            .map(|g| {
                let mut m = rhai::Map::new();
                m.insert("text".into(), g.text.into());
                m.insert("ids".into(), int_array(&g.ids).into());
                m.insert("logprobs".into(), float_array(&g.logprobs).into());
                m.insert("finish".into(), g.finish.as_str().into());
                m.into()
            })
            .collect())
    }

    /// Log-probability of each `continuation` token after `prompt` (each a string or an
    /// array of token ids; tokenised apart, as RLMEC does).
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let lp = m.score("The answer is", " yes");
    /// print(lp);
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn score(
        model: &mut Model,
        prompt: Dynamic,
        continuation: Dynamic,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        let out = score_batch(model, vec![prompt], vec![continuation], rhai::Map::new())?;
        Ok(out[0].clone().into_array()?)
    }

    /// `score` for many pairs at once, batched: `prompts[i]` with `continuations[i]`.
    /// Options: `batch_size` (pairs scored together). Defaults: {defaults:score}.
    ///
    /// ```rhai
    /// let m = model_load("tests/fixtures/model/tiny-llama");
    /// let all = m.score_batch(["Q: a", "Q: b"], [" yes", [3, 4, 5]], #{batch_size: 2});
    /// print(all[1].len());
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn score_batch(
        model: &mut Model,
        prompts: rhai::Array,
        continuations: rhai::Array,
        options: rhai::Map,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        if prompts.len() != continuations.len() {
            return Err(format!(
                "score_batch: {} prompts but {} continuations",
                prompts.len(),
                continuations.len()
            )
            .into());
        }
        let mut o = Options::new("score_batch", options);
        let opts: ScoreOptions = o.parse()?;
        o.finish()?;
        let engine = model.engine();
        let pairs = prompts
            .iter()
            .zip(&continuations)
            .enumerate()
            .map(|(i, (p, c))| {
                Ok((
                    tokens_of(&*engine, &format!("score: prompt {i}"), p)?,
                    tokens_of(&*engine, &format!("score: continuation {i}"), c)?,
                ))
            })
            .collect::<Res<Vec<_>>>()?;
        let out = engine
            .score(&pairs, opts.batch_size)
            .map_err(|e| format!("score: {e}"))?;
        Ok(out.into_iter().map(|lp| float_array(&lp).into()).collect())
    }
}
