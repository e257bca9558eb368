//! Scoring on two torch threads, which splits each batch into two halves run side by side,
//! against transformers' log-probabilities. Its own test binary: torch's thread count is
//! per process, and the other model tests set it to one.

mod common;

use rlmec::generate::score::score;
use rlmec::model::{LoadOptions, Model};

use common::{assert_close, floats, model_fixture, read_json, score_pairs};

#[test]
fn scoring_split_between_two_cores_matches_transformers() {
    tch::set_num_threads(1);
    let model = Model::load(&model_fixture("tiny-llama"), LoadOptions::default()).unwrap();
    let r = read_json(&model_fixture("tiny-llama").join("reference.json"));
    let fixture = score_pairs(&r);
    // An odd batch, so the two halves differ in size.
    let which = [0, 1, 0];
    let pairs: Vec<_> = which.iter().map(|&k| fixture[k].clone()).collect();
    let one_stream = score(&model, &pairs, 8).unwrap();

    tch::set_num_threads(2);
    let split = score(&model, &pairs, 8).unwrap();
    assert_eq!(tch::get_num_threads(), 2, "the thread count is restored");
    for (lp, &k) in split.iter().zip(&which) {
        assert_close(lp, &floats(&r["score"]["logprobs"][k]), 1e-4, "split");
    }
    // As one stream, up to the last bits a different batch shape gives.
    for (a, b) in split.iter().zip(one_stream) {
        let b: Vec<f64> = b.iter().map(|&x| x as f64).collect();
        assert_close(a, &b, 1e-5, "split vs one stream");
    }
}
