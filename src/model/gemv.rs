//! Decoding's matrix–vector products on the CPU.
//!
//! A decoding step multiplies one activation row (or a few) by every weight matrix, so it is
//! bound by streaming the weights from memory. MKL reaches about 14 GB/s on this mix of
//! shapes here; a plain row-by-row `y += x[k]·Wᵀ[k, :]` over the column-major weights
//! ([`super::llama`] stores them so) streams each weight once, in order, at 19–21 GB/s on
//! one core (AVX2 where the CPU has it). Used only for f32 on the CPU in KV-cache decoding (never under autograd);
//! everything else, and every other device, goes through torch.

use tch::{Device, Kind, Tensor};

/// Above this many rows the product is no longer bound by the weight stream and MKL's
/// blocked kernels win.
pub const MAX_ROWS: usize = 4;

/// `x·Wᵀ + b` for `x` [..., in] with at most [`MAX_ROWS`] rows and a column-major f32 `W`
/// [out, in] on the CPU; `None` when that does not apply.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Option<Tensor> {
    let on_cpu_f32 = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    if !on_cpu_f32(x) || !on_cpu_f32(weight) || !bias.is_none_or(on_cpu_f32) {
        return None;
    }
    let (out_dim, in_dim) = weight.size2().ok()?;
    let wt = weight.tr();
    let shape = x.size();
    if !wt.is_contiguous() || shape.last() != Some(&in_dim) {
        return None;
    }
    let rows = (x.numel() as i64 / in_dim.max(1)) as usize;
    if rows == 0 || rows > MAX_ROWS {
        return None;
    }
    let (in_dim, out_dim) = (in_dim as usize, out_dim as usize);
    let x = x.contiguous();
    let y = match bias {
        Some(b) => b.contiguous().unsqueeze(0).repeat([rows as i64, 1]),
        None => Tensor::zeros([rows as i64, out_dim as i64], (Kind::Float, Device::Cpu)),
    };
    // SAFETY: all three are contiguous f32 CPU tensors of the lengths used, alive for the
    // whole call, and `y` is a fresh tensor nothing else refers to.
    unsafe {
        let xs = std::slice::from_raw_parts(x.data_ptr() as *const f32, rows * in_dim);
        let ws = std::slice::from_raw_parts(wt.data_ptr() as *const f32, in_dim * out_dim);
        let ys = std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, rows * out_dim);
        accumulate(xs, ws, ys, in_dim, out_dim);
    }
    let mut out_shape = shape;
    *out_shape.last_mut().expect("x has a last dimension") = out_dim as i64;
    Some(y.view(out_shape.as_slice()))
}

/// `ys[r, :] += Σ_k xs[r, k] · ws[k, :]`, each row of `ws` read once for every `r`.
///
/// One thread: handing each of a step's ~200 products to a second thread costs more in
/// wake-ups than it saves (measured: 27 → 12 tokens/s with rayon on 2 cores).
fn accumulate(xs: &[f32], ws: &[f32], ys: &mut [f32], in_dim: usize, out_dim: usize) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { accumulate_avx2(xs, ws, ys, in_dim, out_dim) };
    }
    accumulate_portable(xs, ws, ys, in_dim, out_dim)
}

/// [`accumulate_portable`] compiled for AVX2 (8 lanes instead of SSE2's 4). Without
/// `mul_add` no multiply-add is fused, so both give bit-identical results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(xs: &[f32], ws: &[f32], ys: &mut [f32], in_dim: usize, out_dim: usize) {
    accumulate_portable(xs, ws, ys, in_dim, out_dim)
}

#[inline(always)]
fn accumulate_portable(xs: &[f32], ws: &[f32], ys: &mut [f32], in_dim: usize, out_dim: usize) {
    for (k, w_row) in ws.chunks_exact(out_dim).enumerate() {
        for (x_row, y_row) in xs.chunks_exact(in_dim).zip(ys.chunks_exact_mut(out_dim)) {
            let xk = x_row[k];
            for (y, w) in y_row.iter_mut().zip(w_row) {
                *y += xk * w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_linear() {
        let w = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
        let w_cm = w.tr().contiguous().tr(); // same values, column-major
        let b = Tensor::randn([7], (Kind::Float, Device::Cpu));
        for rows in [1, 3, 4] {
            let x = Tensor::randn([rows, 1, 5], (Kind::Float, Device::Cpu));
            let want = x.linear(&w, Some(&b));
            let got = linear(&x, &w_cm, Some(&b)).unwrap();
            assert_eq!(got.size(), want.size());
            assert!(got.allclose(&want, 1e-5, 1e-5, false), "rows {rows}");
            let got = linear(&x, &w_cm, None).unwrap();
            assert!(got.allclose(&x.linear::<Tensor>(&w, None), 1e-5, 1e-5, false));
        }
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let (rows, in_dim, out_dim) = (3, 37, 53);
        let xs: Vec<f32> = (0..rows * in_dim)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let ws: Vec<f32> = (0..in_dim * out_dim)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let mut portable = vec![0.5f32; rows * out_dim];
        let mut dispatched = portable.clone();
        accumulate_portable(&xs, &ws, &mut portable, in_dim, out_dim);
        accumulate(&xs, &ws, &mut dispatched, in_dim, out_dim);
        assert_eq!(portable, dispatched);
    }

    #[test]
    fn declines_what_it_does_not_cover() {
        let w = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([1, 5], (Kind::Float, Device::Cpu));
        assert!(linear(&x, &w, None).is_none(), "row-major weight");
        let w_cm = w.tr().contiguous().tr();
        assert!(
            linear(
                &Tensor::randn([5, 5], (Kind::Float, Device::Cpu)),
                &w_cm,
                None
            )
            .is_none()
        );
        assert!(
            linear(
                &x.to_kind(Kind::BFloat16),
                &w_cm.to_kind(Kind::BFloat16),
                None
            )
            .is_none()
        );
    }
}
