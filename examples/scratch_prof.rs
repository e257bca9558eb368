use rlmec::generate::sampler::SamplingParams;
use rlmec::generate::{GenerateOptions, Request, generate};
use rlmec::model::{LoadOptions, Model};
use std::path::Path;
use std::time::Instant;
fn main() {
    tch::set_num_threads(2);
    let model = Model::load(
        Path::new("data/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        LoadOptions::default(),
    )
    .unwrap();
    let p: Vec<i64> = model.tokenizer.encode(&"Below is an instruction that describes a task. Write a response that appropriately completes the request. ".repeat(3)).unwrap();
    for (b, new) in [
        (16usize, 1usize),
        (16, 1),
        (16, 9),
        (16, 17),
        (1, 1),
        (1, 17),
    ] {
        let reqs: Vec<Request> = (0..b)
            .map(|_| Request {
                prompt: p.clone(),
                max_new_tokens: new,
            })
            .collect();
        let opts = GenerateOptions {
            sampling: SamplingParams::greedy(),
            min_new_tokens: new,
            batch_size: 16,
            ..Default::default()
        };
        let t = Instant::now();
        generate(&model, &reqs, &opts).unwrap();
        println!("b{b} new={new}: {:.2}s", t.elapsed().as_secs_f64());
    }
}
