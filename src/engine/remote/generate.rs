//! Generation through a server: the requests a call becomes, and the [`Generation`]s their
//! answers become.
//!
//! A run of identical consecutive requests (how a step asks for several samples of one
//! prompt) is one request with `n` completions where the server supports `n`; elsewhere each
//! copy is its own request. Each request of a sampled call gets its own seed, drawn from the
//! call's seed and the index of the (first) request it answers, as the native engine gives
//! each request its own stream: copies sample differently and a rerun asks exactly what it
//! asked before (so the cache answers it). A greedy run is asked once and its completion
//! copied: greedy decoding gives every copy the same tokens.

use std::sync::Arc;

use rand::RngCore;

use super::RemoteModel;
use super::completions::{self, Ask, Choice};
use crate::engine::Engine;
use crate::generate::sampler::request_rng;
use crate::generate::{Finish, GenerateError, GenerateOptions, Generation, Request};
use crate::http::Parse;
use crate::tokenize::{TextTokenizer, TokenizeError};

/// [`crate::engine::Engine::generate`] through `remote`'s server.
pub fn generate(
    remote: &RemoteModel,
    requests: &[Request],
    opts: &GenerateOptions,
) -> Result<Vec<Generation>, GenerateError> {
    crate::generate::validate(requests, opts)?;
    let tokenizer = &remote.tokenizer;
    let planned = plan(
        requests,
        opts.sampling.is_greedy(),
        remote.features.n,
        opts.seed,
    );
    let bodies = planned
        .iter()
        .map(|p| {
            let request = &requests[p.first()];
            let prompt = tokenizer.decode(&request.prompt)?;
            let ask = Ask {
                prompt: &prompt,
                max_tokens: request.max_new_tokens,
                n: p.n,
                seed: p.seed,
            };
            Ok(completions::generation_body(
                remote.served_model(),
                &ask,
                opts,
                tokenizer.vocab_size(),
                remote.features.logprobs,
            ))
        })
        .collect::<Result<Vec<_>, GenerateError>>()?;
    let parse: Parse = Arc::new(|v| {
        let choices = completions::choices(v)?;
        serde_json::to_value(choices).map_err(|e| e.to_string())
    });
    let answers = remote.ask(bodies, &parse, "generate")?;
    let mut out: Vec<Generation> = (0..requests.len()).map(|_| no_budget()).collect();
    for (p, answer) in planned.iter().zip(answers) {
        let choices: Vec<Choice> = serde_json::from_value(answer).map_err(|e| {
            GenerateError::Server(format!(
                "{}: a cached answer is unreadable: {e}",
                remote.name()
            ))
        })?;
        if choices.len() < p.n {
            return Err(GenerateError::Server(format!(
                "{}: asked for {} completions of prompt {}, got {}",
                remote.name(),
                p.n,
                p.first(),
                choices.len()
            )));
        }
        if p.n == 1 {
            // One completion asked for a run is a greedy one, copied.
            let greedy = generation(&choices[0], tokenizer, &remote.eos)?;
            for i in p.requests.clone() {
                out[i] = greedy.clone();
            }
        } else {
            for (choice, i) in choices.iter().zip(p.requests.clone()) {
                out[i] = generation(choice, tokenizer, &remote.eos)?;
            }
        }
    }
    Ok(out)
}

/// One request to the server and the requests (a run of identical ones) it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub requests: std::ops::Range<usize>,
    /// Completions asked (1 when a greedy completion is copied or the server lacks `n`).
    pub n: usize,
    pub seed: Option<u32>,
}

impl Planned {
    /// The request whose prompt and budget this one sends.
    pub fn first(&self) -> usize {
        self.requests.start
    }
}

/// The server requests for `requests` (those with no budget need none: see
/// [`no_budget`]). `n_supported`: whether one request may ask for several completions.
pub fn plan(requests: &[Request], greedy: bool, n_supported: bool, seed: u64) -> Vec<Planned> {
    let same =
        |a: &Request, b: &Request| a.prompt == b.prompt && a.max_new_tokens == b.max_new_tokens;
    let seed_of = |index: usize| (!greedy).then(|| request_seed(seed, index));
    let mut planned = Vec::new();
    let mut start = 0;
    while start < requests.len() {
        let end = (start + 1..requests.len())
            .find(|&i| !same(&requests[start], &requests[i]))
            .unwrap_or(requests.len());
        if requests[start].max_new_tokens > 0 {
            if greedy || n_supported {
                planned.push(Planned {
                    requests: start..end,
                    n: if greedy { 1 } else { end - start },
                    seed: seed_of(start),
                });
            } else {
                planned.extend((start..end).map(|i| Planned {
                    requests: i..i + 1,
                    n: 1,
                    seed: seed_of(i),
                }));
            }
        }
        start = end;
    }
    planned
}

/// The seed of the request answering request `index` of a call seeded `seed`: 31 bits,
/// which every server's seed field holds (llama.cpp's is 32-bit).
fn request_seed(seed: u64, index: usize) -> u32 {
    request_rng(seed, index).next_u32() >> 1
}

/// What a request with no budget generates: nothing, as natively.
pub fn no_budget() -> Generation {
    Generation {
        text: String::new(),
        ids: Vec::new(),
        logprobs: Vec::new(),
        finish: Finish::Length,
    }
}

/// The generation a server's completion stands for, in our ids.
///
/// The ids are the server's own where it gave them, else our encoding of the text; either
/// way the EOS that ended a completion is among them, as natively. The log-probabilities are
/// the server's where they cover exactly those ids (the server's tokens spelling the text,
/// EOS aside, when we encoded it ourselves), else empty.
pub fn generation(
    choice: &Choice,
    tokenizer: &TextTokenizer,
    eos: &[i64],
) -> Result<Generation, TokenizeError> {
    let finish = choice.finish();
    let ends_on_eos = |ids: &[i64]| ids.last().is_some_and(|id| eos.contains(id));
    let (ids, logprobs) = match &choice.ids {
        Some(server_ids) => {
            let mut ids = server_ids.clone();
            if finish == Finish::Eos && !ends_on_eos(&ids) {
                ids.extend(eos.first());
            }
            (ids, choice.logprobs.clone())
        }
        None => {
            let mut ids = tokenizer.encode(&choice.text)?;
            let text_len = ids.len();
            if finish == Finish::Eos {
                ids.extend(eos.first());
            }
            let spells_the_text = choice.tokens.as_ref().is_some_and(|tokens| {
                tokens.len() == ids.len() && tokens[..text_len].concat() == choice.text
            });
            (ids, choice.logprobs.clone().filter(|_| spells_the_text))
        }
    };
    let logprobs = logprobs
        .filter(|lp| lp.len() == ids.len())
        .unwrap_or_default();
    Ok(Generation {
        text: choice.text.clone(),
        ids,
        logprobs,
        finish,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &[i64], budget: usize) -> Request {
        Request {
            prompt: prompt.to_vec(),
            max_new_tokens: budget,
        }
    }

    fn tokenizer() -> TextTokenizer {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/model/tiny-llama"
        );
        TextTokenizer::of_model(std::path::Path::new(dir)).unwrap()
    }

    #[test]
    fn runs_of_identical_requests_share_one_request_where_n_is_supported() {
        let requests = [
            request(&[1, 2], 8),
            request(&[1, 2], 8),
            request(&[1, 2], 8),
            request(&[1, 2], 4),
            request(&[3], 0),
            request(&[1, 2], 8),
        ];
        let sampled = plan(&requests, false, true, 5);
        let runs: Vec<_> = sampled.iter().map(|p| (p.requests.clone(), p.n)).collect();
        assert_eq!(runs, [(0..3, 3), (3..4, 1), (5..6, 1)]);
        assert!(sampled.iter().all(|p| p.seed.is_some()));
        assert_ne!(sampled[0].seed, sampled[2].seed, "seeds follow the index");

        let separate = plan(&requests, false, false, 5);
        let runs: Vec<_> = separate.iter().map(|p| (p.requests.clone(), p.n)).collect();
        assert_eq!(
            runs,
            [(0..1, 1), (1..2, 1), (2..3, 1), (3..4, 1), (5..6, 1)]
        );
        let seeds: std::collections::HashSet<_> = separate.iter().map(|p| p.seed).collect();
        assert_eq!(seeds.len(), 5, "each copy samples with its own seed");
        assert_eq!(
            separate,
            plan(&requests, false, false, 5),
            "reruns ask the same"
        );
        assert_ne!(separate, plan(&requests, false, false, 6));

        let greedy = plan(&requests, true, true, 5);
        let runs: Vec<_> = greedy
            .iter()
            .map(|p| (p.requests.clone(), p.n, p.seed))
            .collect();
        assert_eq!(runs, [(0..3, 1, None), (3..4, 1, None), (5..6, 1, None)]);
    }

    #[test]
    fn server_ids_are_kept_and_text_is_encoded_otherwise() {
        let tok = tokenizer();
        let eos = [2];
        let with_ids = Choice {
            text: " ab".into(),
            finish: "eos".into(),
            ids: Some(vec![40, 41, 2]),
            tokens: None,
            logprobs: Some(vec![-0.1, -0.2, -0.3]),
        };
        let g = generation(&with_ids, &tok, &eos).unwrap();
        assert_eq!(
            (g.ids, g.logprobs),
            (vec![40, 41, 2], vec![-0.1, -0.2, -0.3])
        );
        assert_eq!((g.text.as_str(), g.finish), (" ab", Finish::Eos));

        // No ids: our encoding of the text, plus EOS; the log-probabilities when the
        // server's tokens spell the text (the EOS token's text aside).
        let text = "The answer is 4";
        let ours = tok.encode(text).unwrap();
        let pieces: Vec<String> = ours
            .iter()
            .map(|&id| tok.decode(&[id]).unwrap())
            .chain(["<|im_end|>".to_string()])
            .collect();
        assert_eq!(pieces[..ours.len()].concat(), text);
        let lp: Vec<f32> = (0..pieces.len()).map(|i| -(i as f32) / 10.0).collect();
        let spelled = Choice {
            text: text.into(),
            finish: "eos".into(),
            ids: None,
            tokens: Some(pieces.clone()),
            logprobs: Some(lp.clone()),
        };
        let g = generation(&spelled, &tok, &eos).unwrap();
        assert_eq!(g.ids, [ours.clone(), vec![2]].concat());
        assert_eq!(g.logprobs, lp);

        // Tokens that do not line up with our ids: no log-probabilities.
        let mut other = spelled.clone();
        other.tokens = Some(vec![text.to_string(), String::new()]);
        other.logprobs = Some(vec![-1.0, -2.0]);
        let g = generation(&other, &tok, &eos).unwrap();
        assert_eq!(g.ids.len(), ours.len() + 1);
        assert!(g.logprobs.is_empty());

        // A length finish adds no EOS.
        let mut length = spelled;
        length.finish = "length".into();
        length.tokens = None;
        let g = generation(&length, &tok, &eos).unwrap();
        assert_eq!((g.ids, g.finish), (ours, Finish::Length));
        assert!(g.logprobs.is_empty());
    }
}
