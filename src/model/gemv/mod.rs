//! Decoding's matrix products on the CPU.
//!
//! A decoding step multiplies a few activation rows by every weight matrix. At one row it is
//! bound by streaming the weights from memory; at 16 it is still mostly that, and MKL spends
//! most of its time packing the weights it reads only once (40% of a batch-16 step in
//! `sgemm_scopy`). This kernel reads the column-major weights ([`super::llama`] stores them
//! so) in place: row blocks × column tiles accumulated in registers over a few `k` at a time,
//! so the weights stream as parallel sequential runs. Large products are split over `k`
//! between this thread and a spinning helper ([`helper`]): two cores read memory faster than
//! one. Measured on SmolLM2's shapes, 2 cores, ms per decoding step: 1 row 19 vs MKL 36,
//! 4 rows 29 vs 73, 16 rows 72 vs 100. Used only for f32 on the CPU in KV-cache decoding
//! (never under autograd); everything else, and every other device, goes through torch.

mod helper;

use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Device, Kind, Tensor};

/// The most rows served (a decoding batch); above, packed GEMM kernels (oneDNN, MKL) pay off.
pub const MAX_ROWS: usize = 16;

/// Output columns per tile: one AVX-512 register, two AVX2 ones.
const TILE: usize = 16;
/// Rows per block: 6 × 2 AVX2 accumulators + 2 weights + 1 broadcast fit in 16 registers.
const ROW_BLOCK: usize = 6;
/// `ws` rows per pass over the tiles.
const K_BLOCK: usize = 16;

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
    let whole = Product {
        xs: x.data_ptr() as *const f32,
        ws: wt.data_ptr() as *const f32,
        ys: y.data_ptr() as *mut f32,
        rows,
        in_dim,
        out_dim,
        ks: 0..in_dim,
    };
    // SAFETY: all three are contiguous f32 CPU tensors of the lengths used, alive for the
    // whole call, and `y` is a fresh tensor nothing else refers to.
    unsafe {
        if in_dim * out_dim >= SPLIT_MIN {
            whole.run_halves(SECOND_CORE.load(Ordering::Acquire));
        } else {
            whole.run();
        }
    }
    let mut out_shape = shape;
    *out_shape.last_mut().expect("x has a last dimension") = out_dim as i64;
    Some(y.view(out_shape.as_slice()))
}

/// Whether products may use the helper thread: only while [`DecodeThreads`] has lent it
/// torch's second thread, so that the process never uses more cores than it was given.
static SECOND_CORE: AtomicBool = AtomicBool::new(false);

/// Lends torch's second intra-op thread to the decode kernel for steps it serves: torch's
/// idle OpenMP workers spin, and two spinners starve the kernel's helper (measured: 31 → 3
/// tokens/s). Restores the thread count when dropped.
pub struct DecodeThreads {
    device: Device,
    before: i32,
}

impl DecodeThreads {
    pub fn new(device: Device) -> Self {
        Self {
            device,
            before: tch::get_num_threads(),
        }
    }

    /// Call before each decoding step with the rows it decodes.
    pub fn set_rows(&self, rows: usize) {
        if self.device == Device::Cpu && self.before > 1 {
            let lend = rows <= MAX_ROWS;
            let want = if lend { 1 } else { self.before };
            if tch::get_num_threads() != want {
                tch::set_num_threads(want);
            }
            SECOND_CORE.store(lend, Ordering::Release);
        }
    }
}

impl Drop for DecodeThreads {
    fn drop(&mut self) {
        if self.device == Device::Cpu && self.before > 1 {
            SECOND_CORE.store(false, Ordering::Release);
            tch::set_num_threads(self.before);
        }
    }
}

/// Below this many weights a product is not worth a second core.
const SPLIT_MIN: usize = 1 << 16;

/// `ys[r, :] += Σ_{k ∈ ks} xs[r, k] · ws[k, :]` over raw buffers (`xs` [rows, in_dim],
/// `ws` [in_dim, out_dim], `ys` [rows, out_dim], row-major), so that it can be handed to
/// the helper thread.
#[derive(Clone)]
pub struct Product {
    xs: *const f32,
    ws: *const f32,
    ys: *mut f32,
    rows: usize,
    in_dim: usize,
    out_dim: usize,
    ks: std::ops::Range<usize>,
}

// SAFETY: a product is only the description of work on buffers its poster keeps alive.
unsafe impl Send for Product {}

impl Product {
    /// The sum over the first half of `ks` into `ys`, the second half into a scratch block
    /// (on the helper thread if `on_helper`), then added: the same bits either way.
    ///
    /// # Safety
    /// As [`Self::run`].
    unsafe fn run_halves(&self, on_helper: bool) {
        let mut partial = vec![0f32; self.rows * self.out_dim];
        let mid = self.ks.start + self.ks.len() / 2;
        let first = Product {
            ks: self.ks.start..mid,
            ..self.clone()
        };
        let second = Product {
            ks: mid..self.ks.end,
            ys: partial.as_mut_ptr(),
            ..self.clone()
        };
        // SAFETY: the halves write different buffers; `partial` outlives the call.
        unsafe {
            if on_helper {
                helper::run_pair(first, second);
            } else {
                first.run();
                second.run();
            }
            let ys = std::slice::from_raw_parts_mut(self.ys, self.rows * self.out_dim);
            for (y, p) in ys.iter_mut().zip(&partial) {
                *y += p;
            }
        }
    }

    /// # Safety
    /// The buffers must be valid for the lengths described and `ys` not accessed by anyone
    /// else meanwhile.
    unsafe fn run(&self) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { self.run_avx512() };
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { self.run_avx2() };
        }
        unsafe { self.run_portable() }
    }

    /// [`Self::run_portable`] compiled for AVX2 (8 lanes instead of SSE2's 4). Without
    /// `mul_add` no multiply-add is fused, so both give bit-identical results.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self) {
        unsafe { self.run_portable() }
    }

    /// [`Self::run_portable`] with 16 lanes: a tile row is one register.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self) {
        unsafe { self.run_portable() }
    }

    /// Row blocks of [`ROW_BLOCK`] × column tiles of [`TILE`], accumulated in registers
    /// over [`K_BLOCK`] rows of `ws` at a time: each weight is loaded once per row block,
    /// and a block's `ws` rows are read as [`K_BLOCK`] parallel sequential runs (a tile's
    /// whole column, strided by `out_dim`, would miss the TLB at every row).
    #[inline(always)]
    unsafe fn run_portable(&self) {
        let tiles = self.out_dim / TILE * TILE;
        let mut k0 = self.ks.start;
        while k0 < self.ks.end {
            let ks = k0..(k0 + K_BLOCK).min(self.ks.end);
            let mut r0 = 0;
            while r0 < self.rows {
                let n = (self.rows - r0).min(ROW_BLOCK);
                for c0 in (0..tiles).step_by(TILE) {
                    let ks = ks.clone();
                    match n {
                        ROW_BLOCK => unsafe { self.tile::<ROW_BLOCK>(r0, c0, ks) },
                        5 => unsafe { self.tile::<5>(r0, c0, ks) },
                        4 => unsafe { self.tile::<4>(r0, c0, ks) },
                        3 => unsafe { self.tile::<3>(r0, c0, ks) },
                        2 => unsafe { self.tile::<2>(r0, c0, ks) },
                        _ => unsafe { self.tile::<1>(r0, c0, ks) },
                    }
                }
                r0 += n;
            }
            k0 = ks.end;
        }
        if tiles < self.out_dim {
            for k in self.ks.clone() {
                for r in 0..self.rows {
                    let xk = unsafe { *self.xs.add(r * self.in_dim + k) };
                    for c in tiles..self.out_dim {
                        unsafe {
                            *self.ys.add(r * self.out_dim + c) +=
                                xk * *self.ws.add(k * self.out_dim + c)
                        };
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn tile<const R: usize>(&self, r0: usize, c0: usize, ks: std::ops::Range<usize>) {
        let mut acc = [[0f32; TILE]; R];
        for (r, a) in acc.iter_mut().enumerate() {
            let y = unsafe {
                std::slice::from_raw_parts(self.ys.add((r0 + r) * self.out_dim + c0), TILE)
            };
            a.copy_from_slice(y);
        }
        for k in ks {
            let w: &[f32; TILE] =
                unsafe { &*(self.ws.add(k * self.out_dim + c0) as *const [f32; TILE]) };
            for (r, a) in acc.iter_mut().enumerate() {
                let xk = unsafe { *self.xs.add((r0 + r) * self.in_dim + k) };
                for j in 0..TILE {
                    a[j] += xk * w[j];
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let y = unsafe {
                std::slice::from_raw_parts_mut(self.ys.add((r0 + r) * self.out_dim + c0), TILE)
            };
            y.copy_from_slice(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_torch_linear() {
        // Small and split sizes, with and without a partial column tile.
        for (out_dim, in_dim) in [(7, 5), (48, 40), (300, 260), (512, 160)] {
            let w = Tensor::randn([out_dim, in_dim], (Kind::Float, Device::Cpu));
            let w_cm = w.tr().contiguous().tr(); // same values, column-major
            let b = Tensor::randn([out_dim], (Kind::Float, Device::Cpu));
            for rows in [1, 3, 7, 16] {
                let x = Tensor::randn([rows, 1, in_dim], (Kind::Float, Device::Cpu));
                let want = x.linear(&w, Some(&b));
                let got = linear(&x, &w_cm, Some(&b)).unwrap();
                assert_eq!(got.size(), want.size());
                let case = format!("{out_dim}x{in_dim}, {rows} rows");
                assert!(got.allclose(&want, 1e-4, 1e-4, false), "{case}");
                let got = linear(&x, &w_cm, None).unwrap();
                let want = x.linear::<Tensor>(&w, None);
                assert!(got.allclose(&want, 1e-4, 1e-4, false), "{case}");
            }
        }
    }

    fn values(n: usize, step: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * step).sin()).collect()
    }

    #[test]
    fn every_instruction_set_and_thread_gives_the_same_bits() {
        let (in_dim, out_dim) = (37, 53);
        let ws = values(in_dim * out_dim, 0.11);
        for rows in [1, 5, 6, 13] {
            let xs = values(rows * in_dim, 0.37);
            let product = |ys: &mut Vec<f32>| Product {
                xs: xs.as_ptr(),
                ws: ws.as_ptr(),
                ys: ys.as_mut_ptr(),
                rows,
                in_dim,
                out_dim,
                ks: 0..in_dim,
            };
            let mut portable = vec![0.5f32; rows * out_dim];
            let mut dispatched = portable.clone();
            let mut halves = portable.clone();
            let mut halves_here = portable.clone();
            // SAFETY: the vectors outlive the calls and have the described lengths.
            unsafe {
                product(&mut portable).run_portable();
                product(&mut dispatched).run();
                product(&mut halves).run_halves(true);
                product(&mut halves_here).run_halves(false);
            }
            assert_eq!(portable, dispatched, "{rows} rows");
            assert_eq!(halves, halves_here, "{rows} rows");
        }
    }

    #[test]
    fn declines_what_it_does_not_cover() {
        let w = Tensor::randn([7, 5], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([1, 5], (Kind::Float, Device::Cpu));
        assert!(linear(&x, &w, None).is_none(), "row-major weight");
        let w_cm = w.tr().contiguous().tr();
        assert!(
            linear(
                &Tensor::randn([MAX_ROWS as i64 + 1, 5], (Kind::Float, Device::Cpu)),
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
