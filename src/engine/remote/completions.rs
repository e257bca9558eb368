//! The wire format of `/v1/completions`: the bodies a remote engine sends (a generation, a
//! scoring) and what it keeps of the answers.
//!
//! One body serves every OpenAI-compatible server: a field one server lacks is one it
//! ignores (vLLM logs it, llama-cpp-python's and llama.cpp's servers drop it silently), so a
//! server is never asked which it is. Each field is set explicitly where the servers' defaults differ
//! from the native engine's: llama-cpp-python samples with `top_k` 40, `min_p` 0.05 and
//! `repeat_penalty` 1.1 unless told otherwise; vLLM adds BOS to a text prompt and drops
//! special tokens from the text unless told otherwise.
//!
//! An answer is reduced to a [`Choice`] per completion before it is cached: the text, how
//! it ended, and the server's ids and log-probabilities where it gave them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::generate::sampler::SamplingParams;
use crate::generate::{Finish, GenerateOptions};

/// What varies between the generation bodies of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask<'a> {
    pub prompt: &'a str,
    pub max_tokens: usize,
    /// Completions of this prompt in one request.
    pub n: usize,
    /// `None` for greedy decoding, which needs none.
    pub seed: Option<u32>,
}

/// The body asking `model` for `ask.n` continuations of `ask.prompt` decoded as `opts` says;
/// `vocab` is the tokenizer's vocabulary size and `logprobs` whether to ask for the sampled
/// tokens' log-probabilities.
pub fn generation_body(
    model: &str,
    ask: &Ask,
    opts: &GenerateOptions,
    vocab: usize,
    logprobs: bool,
) -> Value {
    let SamplingParams {
        temperature,
        top_p,
        top_k,
    } = opts.sampling;
    let mut body = json!({
        "model": model,
        "prompt": ask.prompt,
        "max_tokens": ask.max_tokens,
        "n": ask.n,
        "temperature": temperature,
        "top_p": top_p,
        // "Off" is 0 to llama.cpp and current vLLM, -1 to older vLLM and SGLang (which reject
        // 0), and llama-cpp-python rejects -1; the whole vocabulary means off to all of them.
        "top_k": if top_k > 0 { top_k as usize } else { vocab },
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        // The prompt is our decoded ids: nothing may be added to it, and special tokens stay
        // in the text, as native decoding keeps them.
        "add_special_tokens": false,
        "skip_special_tokens": false,
        // vLLM's own ids of the completion: `token_ids` (vLLM >= 0.10.2), or the tokens of
        // the log-probabilities spelled `token_id:<id>` (older versions).
        "return_token_ids": true,
    });
    if logprobs {
        // 1, not 0: llama.cpp's server returns no probabilities at all for 0.
        body["logprobs"] = json!(1);
        body["return_tokens_as_token_ids"] = json!(true);
    }
    if let Some(seed) = ask.seed {
        body["seed"] = json!(seed);
    }
    if !opts.stop.is_empty() {
        body["stop"] = json!(opts.stop);
    }
    if opts.min_new_tokens > 0 {
        body["min_tokens"] = json!(opts.min_new_tokens);
    }
    body
}

/// The body asking `model` for the log-probability of every token of `ids` given the ones
/// before it: the ids echoed back with their log-probabilities, one greedy token generated
/// (servers generate at least one).
pub fn score_body(model: &str, ids: &[i64]) -> Value {
    json!({
        "model": model,
        "prompt": ids,
        "max_tokens": 1,
        "temperature": 0.0,
        "echo": true,
        "logprobs": 1,
        "prompt_logprobs": 0,
        "add_special_tokens": false,
    })
}

/// One completion as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub text: String,
    /// `eos`, `stop` or `length` ([`Finish::as_str`]).
    pub finish: String,
    /// The completion's ids, when the server gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<i64>>,
    /// The server's tokens as text, when it gave them but not their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    /// The log-probability of each of the server's tokens, when it gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f32>>,
}

impl Choice {
    pub fn finish(&self) -> Finish {
        match self.finish.as_str() {
            "stop" => Finish::Stop,
            "length" => Finish::Length,
            _ => Finish::Eos,
        }
    }
}

/// The choices of a `/v1/completions` answer in index order, or why the body is not one.
pub fn choices(response: &Value) -> Result<Vec<Choice>, String> {
    let shown = || response.to_string().chars().take(200).collect::<String>();
    let raw = response["choices"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("no `choices` in the answer: {}", shown()))?;
    let mut indexed = raw
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let index = c["index"].as_u64().map_or(i, |x| x as usize);
            choice(c).map(|c| (index, c))
        })
        .collect::<Result<Vec<_>, String>>()?;
    indexed.sort_by_key(|(index, _)| *index);
    Ok(indexed.into_iter().map(|(_, c)| c).collect())
}

fn choice(c: &Value) -> Result<Choice, String> {
    let text = c["text"]
        .as_str()
        .ok_or_else(|| format!("a choice without `text`: {c}"))?;
    let tokens: Option<Vec<&str>> = c["logprobs"]["tokens"]
        .as_array()
        .and_then(|t| t.iter().map(Value::as_str).collect());
    // vLLM names the stop string that ended a completion (`stop_reason`); EOS or a stop
    // token leaves it null or an id. llama.cpp names none, but the tokens it reports go on
    // past the text it cut before a stop string (an EOS is not among them).
    let past_the_text = tokens
        .as_ref()
        .map(|t| t.concat())
        .is_some_and(|spelled| spelled.len() > text.len() && spelled.starts_with(text));
    let finish = match (c["finish_reason"].as_str(), &c["stop_reason"]) {
        (Some("length"), _) => Finish::Length,
        (Some("stop"), Value::String(_)) => Finish::Stop,
        (Some("stop"), _) if past_the_text => Finish::Stop,
        (Some("stop"), _) => Finish::Eos,
        (other, _) => return Err(format!("a choice that ended with `{other:?}`: {c}")),
    };
    let ids_of_tokens: Option<Vec<i64>> = tokens.as_ref().and_then(|t| {
        t.iter()
            .map(|s| s.strip_prefix("token_id:")?.parse().ok())
            .collect()
    });
    let ids = c["token_ids"]
        .as_array()
        .and_then(|ids| ids.iter().map(Value::as_i64).collect())
        .or(ids_of_tokens);
    let logprobs = c["logprobs"]["token_logprobs"]
        .as_array()
        .and_then(|lp| lp.iter().map(|v| v.as_f64().map(|x| x as f32)).collect());
    Ok(Choice {
        text: text.to_string(),
        finish: finish.as_str().to_string(),
        tokens: tokens
            .filter(|_| ids.is_none())
            .map(|t| t.into_iter().map(str::to_string).collect()),
        ids,
        logprobs,
    })
}

/// What the cache keeps of a scoring answer: its prompt log-probabilities in either shape
/// [`prompt_logprobs`] reads, or why it has none.
pub fn score_answer(response: &Value) -> Result<Value, String> {
    let choice = &response["choices"][0];
    if choice["prompt_logprobs"].is_array() {
        Ok(json!({"choices": [{"prompt_logprobs": choice["prompt_logprobs"]}]}))
    } else if choice["logprobs"]["token_logprobs"].is_array() {
        Ok(
            json!({"choices": [{"logprobs": {"token_logprobs": choice["logprobs"]["token_logprobs"]}}]}),
        )
    } else {
        Err(NO_PROMPT_LOGPROBS.to_string())
    }
}

/// The log-probability of every token of `ids` after the ones before it (the first has
/// none: `ids[0]`'s entry is NaN), read from a scoring answer ([`score_body`]): vLLM's
/// `prompt_logprobs` (per position a map from token id to `{logprob, …}`), else the echoed
/// `logprobs.token_logprobs` (OpenAI's legacy shape).
pub fn prompt_logprobs(response: &Value, ids: &[i64]) -> Result<Vec<f32>, String> {
    let choice = &response["choices"][0];
    if let Some(positions) = choice["prompt_logprobs"].as_array() {
        if positions.len() < ids.len() {
            return Err(format!(
                "`prompt_logprobs` covers {} positions of {}",
                positions.len(),
                ids.len()
            ));
        }
        return ids
            .iter()
            .zip(positions)
            .enumerate()
            .map(|(i, (id, entries))| {
                if i == 0 {
                    return Ok(f32::NAN);
                }
                entries[id.to_string()]["logprob"]
                    .as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| format!("`prompt_logprobs[{i}]` has no entry for token {id}"))
            })
            .collect();
    }
    if let Some(echoed) = choice["logprobs"]["token_logprobs"].as_array() {
        if echoed.len() < ids.len() {
            return Err(format!(
                "the echoed `token_logprobs` cover {} positions of {}",
                echoed.len(),
                ids.len()
            ));
        }
        return echoed[..ids.len()]
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_f64() {
                Some(x) => Ok(x as f32),
                None if i == 0 => Ok(f32::NAN),
                None => Err(format!("`token_logprobs[{i}]` is not a number: {v}")),
            })
            .collect();
    }
    Err(NO_PROMPT_LOGPROBS.to_string())
}

/// Why an answer without prompt log-probabilities cannot score.
const NO_PROMPT_LOGPROBS: &str = "the server returned no prompt log-probabilities (neither vLLM's `prompt_logprobs` nor `logprobs` of an echoed prompt)";

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled() -> GenerateOptions {
        GenerateOptions {
            sampling: SamplingParams {
                temperature: 0.7,
                top_p: 0.9,
                top_k: 0,
            },
            min_new_tokens: 2,
            stop: vec!["\n\n".into()],
            ..GenerateOptions::default()
        }
    }

    #[test]
    fn a_generation_body_sets_what_servers_default_differently() {
        let ask = Ask {
            prompt: "Q: 1 + 1?",
            max_tokens: 12,
            n: 3,
            seed: Some(77),
        };
        let body = generation_body("m", &ask, &sampled(), 384, true);
        assert_eq!(body["prompt"], "Q: 1 + 1?");
        assert_eq!(body["max_tokens"], 12);
        assert_eq!(body["n"], 3);
        assert_eq!(body["seed"], 77);
        assert_eq!(body["top_k"], 384, "off is the whole vocabulary");
        assert_eq!(body["min_p"], 0.0);
        assert_eq!(body["repeat_penalty"], 1.0);
        assert_eq!(body["stop"], json!(["\n\n"]));
        assert_eq!(body["min_tokens"], 2);
        assert_eq!(body["logprobs"], 1);
        assert_eq!(body["add_special_tokens"], false);
        let greedy = Ask { seed: None, ..ask };
        let body = generation_body("m", &greedy, &GenerateOptions::default(), 384, false);
        for absent in ["seed", "stop", "min_tokens", "logprobs"] {
            assert!(body.get(absent).is_none(), "{absent}: {body}");
        }
        assert_eq!(body["temperature"], 0.0);
    }

    #[test]
    fn choices_read_vllm_and_llama_cpp_answers() {
        let vllm = json!({"choices": [
            {"index": 1, "text": " b", "finish_reason": "stop", "stop_reason": "\n\n",
             "token_ids": [5, 6], "logprobs": {"tokens": ["token_id:5", "token_id:6"], "token_logprobs": [-0.5, -0.25]}},
            {"index": 0, "text": " a", "finish_reason": "stop", "stop_reason": null,
             "logprobs": {"tokens": ["token_id:7", "token_id:2"], "token_logprobs": [-1.0, -2.0]}},
        ]});
        let c = choices(&vllm).unwrap();
        assert_eq!(c[0].text, " a");
        assert_eq!(c[0].finish(), Finish::Eos);
        assert_eq!(c[0].ids, Some(vec![7, 2]));
        assert_eq!(c[0].tokens, None);
        assert_eq!(c[1].finish(), Finish::Stop);
        // llama.cpp: no stop_reason, its tokens spell the stop string the text leaves out.
        let cut = json!({"choices": [{"text": " a", "finish_reason": "stop",
            "logprobs": {"tokens": [" a", "\n\n"], "token_logprobs": [-0.1, -0.2]}}]});
        assert_eq!(choices(&cut).unwrap()[0].finish(), Finish::Stop);
        let eos = json!({"choices": [{"text": " a", "finish_reason": "stop",
            "logprobs": {"tokens": [" a"], "token_logprobs": [-0.1]}}]});
        assert_eq!(choices(&eos).unwrap()[0].finish(), Finish::Eos);
        assert_eq!(c[1].ids, Some(vec![5, 6]));
        assert_eq!(c[1].logprobs, Some(vec![-0.5, -0.25]));
        let llama =
            json!({"choices": [{"text": "x y", "finish_reason": "length", "logprobs": null}]});
        let c = choices(&llama).unwrap();
        assert_eq!(c[0].finish(), Finish::Length);
        assert_eq!((c[0].ids.as_ref(), c[0].logprobs.as_ref()), (None, None));
        let strings = json!({"choices": [{"text": "x y", "finish_reason": "length",
            "logprobs": {"tokens": ["x", " y"], "token_logprobs": [-0.1, -0.2]}}]});
        assert_eq!(
            choices(&strings).unwrap()[0].tokens,
            Some(vec!["x".to_string(), " y".to_string()])
        );
        for bad in [
            json!({"error": "x"}),
            json!({"choices": []}),
            json!({"choices": [{"text": "x", "finish_reason": "abort"}]}),
        ] {
            assert!(choices(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prompt_logprobs_take_the_actual_tokens_entry() {
        let vllm = json!({"choices": [{"text": "", "prompt_logprobs": [
            null,
            {"11": {"logprob": -0.5, "rank": 1, "decoded_token": "a"}},
            {"12": {"logprob": -3.0, "rank": 4, "decoded_token": "b"},
             "99": {"logprob": -0.1, "rank": 1, "decoded_token": "z"}},
        ]}]});
        let lp = prompt_logprobs(&vllm, &[10, 11, 12]).unwrap();
        assert!(lp[0].is_nan());
        assert_eq!(&lp[1..], [-0.5, -3.0]);
        let err = prompt_logprobs(&vllm, &[10, 11, 13]).unwrap_err();
        assert!(err.contains("no entry for token 13"), "{err}");
        let echoed = json!({"choices": [{"text": "abc!", "logprobs": {
            "tokens": ["a", "b", "c", "!"], "token_logprobs": [null, -0.5, -3.0, -0.7]}}]});
        let lp = prompt_logprobs(&echoed, &[10, 11, 12]).unwrap();
        assert_eq!(&lp[1..], [-0.5, -3.0]);
        let none = json!({"choices": [{"text": "!", "logprobs": null}]});
        let err = prompt_logprobs(&none, &[10, 11]).unwrap_err();
        assert!(err.contains("no prompt log-probabilities"), "{err}");
        // What the cache keeps reads the same.
        for answer in [vllm, echoed] {
            let kept = score_answer(&answer).unwrap();
            assert_eq!(
                prompt_logprobs(&kept, &[10, 11, 12]).unwrap()[1..],
                [-0.5, -3.0]
            );
        }
        assert_eq!(score_answer(&none).unwrap_err(), NO_PROMPT_LOGPROBS);
    }
}
