use rlmec::model::kv_cache::KvCache;
use rlmec::model::{LoadOptions, Model};
use std::path::Path;
use std::time::Instant;
use tch::{Kind, Tensor};
fn main() {
    tch::set_num_threads(2);
    let model = Model::load(
        Path::new("data/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        LoadOptions::default(),
    )
    .unwrap();
    let net = model.net();
    let _g = tch::no_grad_guard();
    for b in [1i64, 16] {
        let mut cache = KvCache::new(30, [b, 3, 200, 64], Kind::Float, tch::Device::Cpu);
        let ids = Tensor::ones([b, 55], (Kind::Int64, tch::Device::Cpu));
        let pos = Tensor::arange(55, (Kind::Int64, tch::Device::Cpu))
            .unsqueeze(0)
            .repeat([b, 1]);
        let mut mask = Tensor::ones([b, 55], (Kind::Int64, tch::Device::Cpu));
        let t = Instant::now();
        let h = net.forward_hidden(&ids, &pos, &mask, Some(&mut cache));
        let _ = net.logits(&h.select(1, 54));
        println!("b={b} prefill: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        let tok = Tensor::ones([b, 1], (Kind::Int64, tch::Device::Cpu));
        let t = Instant::now();
        for s in 0..20 {
            mask = Tensor::cat(&[&mask, &mask.ones_like().narrow(1, 0, 1)], 1);
            let p = Tensor::full([b, 1], 55 + s, (Kind::Int64, tch::Device::Cpu));
            let h = net.forward_hidden(&tok, &p, &mask, Some(&mut cache));
            let _ = net.logits(&h.squeeze_dim(1));
        }
        println!(
            "b={b} step: {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3 / 20.0
        );
        let t = Instant::now();
        for s in 0..20 {
            let p = Tensor::full([b, 1], 55 + s, (Kind::Int64, tch::Device::Cpu));
            let h = net.forward_hidden(&tok, &p, &mask.narrow(1, 0, 1), None);
            let _ = net.logits(&h.squeeze_dim(1));
        }
        println!(
            "b={b} step no cache: {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3 / 20.0
        );
    }
}
