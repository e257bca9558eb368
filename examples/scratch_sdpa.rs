use std::time::Instant;
use tch::{Device, Kind, Tensor};
fn main() {
    tch::set_num_threads(2);
    let opts = (Kind::Float, Device::Cpu);
    for (b, l) in [(16i64, 119i64), (1, 119)] {
        let q = Tensor::randn([b, 9, 1, 64], opts);
        let kc = Tensor::randn([b, 3, 200, 64], opts);
        let k = kc.narrow(2, 0, l);
        let v = kc.narrow(2, 0, l);
        let mask = Tensor::ones([b, 1, 1, l], (Kind::Bool, Device::Cpu));
        let t = Instant::now();
        for _ in 0..300 {
            let _ = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(&mask),
                0.0,
                false,
                0.125,
                true,
            );
        }
        println!(
            "b={b} sdpa gqa+mask: {:.3} ms",
            t.elapsed().as_secs_f64() / 300.0 * 1e3
        );
        let t = Instant::now();
        for _ in 0..300 {
            let _ = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                false,
                0.125,
                true,
            );
        }
        println!(
            "b={b} sdpa gqa nomask: {:.3} ms",
            t.elapsed().as_secs_f64() / 300.0 * 1e3
        );
        let kr = k.repeat_interleave_self_int(3, 1, None);
        let vr = v.repeat_interleave_self_int(3, 1, None);
        let t = Instant::now();
        for _ in 0..300 {
            let _ = Tensor::scaled_dot_product_attention(
                &q,
                &kr,
                &vr,
                Some(&mask),
                0.0,
                false,
                0.125,
                false,
            );
        }
        println!(
            "b={b} sdpa repeated+mask: {:.3} ms",
            t.elapsed().as_secs_f64() / 300.0 * 1e3
        );
        let t = Instant::now();
        for _ in 0..300 {
            let qg = q.view([b, 3, 3, 64]);
            let s = qg.matmul(&k.transpose(2, 3)) * 0.125; // [b,3,3,l]
            let s = s
                .masked_fill(&mask.logical_not(), f64::NEG_INFINITY)
                .softmax(-1, Kind::Float);
            let _ = s.matmul(&v);
        }
        println!(
            "b={b} manual grouped: {:.3} ms",
            t.elapsed().as_secs_f64() / 300.0 * 1e3
        );
        let x = Tensor::randn([b, 1, 576], opts);
        let w = Tensor::randn([1536, 576], opts);
        let t = Instant::now();
        for _ in 0..300 {
            let _ = x.linear::<Tensor>(&w, None);
        }
        println!(
            "b={b} linear 3d: {:.3} ms",
            t.elapsed().as_secs_f64() / 300.0 * 1e3
        );
        let x2 = x.view([b, 576]);
        let t = Instant::now();
        for _ in 0..300 {
            let _ = x2.linear::<Tensor>(&w, None);
        }
        println!(
            "b={b} linear 2d: {:.3} ms",
            t.elapsed().as_secs_f64() / 300.0 * 1e3
        );
    }
}
