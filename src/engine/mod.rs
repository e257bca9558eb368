//! Where generation and scoring run: the native engine (a loaded [`Model`], batched decoding
//! with a KV cache) or a model behind an OpenAI-compatible inference server ([`remote`]:
//! vLLM, SGLang, llama.cpp), which batches and schedules far better on a GPU than our own
//! decoding loop. The procedure's generation steps (sampling, the GRM's rewriting,
//! evaluation) and the script's `generate`/`score_batch` take an [`Engine`], so either one
//! serves any of them.
//!
//! Both speak token ids with the same tokenizer: a remote engine is given the tokenizer its
//! server's model shares, and checks once that the server tokenizes like it.

pub mod remote;
pub mod served;

use crate::generate::{GenerateError, GenerateOptions, Generation, Request};
use crate::model::Model;
use crate::tokenize::TextTokenizer;

/// A model that continues prompts and scores continuations.
pub trait Engine {
    /// Who generates, for records and messages: a model's path, or `openai:<name>@<url>`.
    fn name(&self) -> String;

    /// The tokenizer the engine's ids are in.
    fn tokenizer(&self) -> &TextTokenizer;

    /// The ids that end a sequence.
    fn eos(&self) -> &[i64];

    /// A continuation of every request, in request order (see [`crate::generate::generate`]
    /// for what a [`Generation`] holds).
    fn generate(
        &self,
        requests: &[Request],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, GenerateError>;

    /// For each (prompt, continuation), the log-probability of every continuation token.
    fn score(
        &self,
        pairs: &[(Vec<i64>, Vec<i64>)],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, GenerateError>;
}

impl Engine for Model {
    fn name(&self) -> String {
        self.origin.display().to_string()
    }

    fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    fn eos(&self) -> &[i64] {
        &self.special.eos
    }

    fn generate(
        &self,
        requests: &[Request],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>, GenerateError> {
        crate::generate::generate(self, requests, opts)
    }

    fn score(
        &self,
        pairs: &[(Vec<i64>, Vec<i64>)],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, GenerateError> {
        crate::generate::score::score(self, pairs, batch_size)
    }
}
