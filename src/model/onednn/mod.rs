//! oneDNN's prepacked matrix products, for f32 inference on the CPU.
//!
//! torch's `linear` on the CPU calls MKL's sgemm, which repacks the weight matrix on every
//! call and, on this AMD CPU, runs its AVX2 kernels. oneDNN packs a weight once into its own
//! blocked layout and runs AVX-512 kernels on any vendor's CPU. Measured here (one core,
//! SmolLM2's shapes, 1280 rows): 8.6 → 7.7 ms for 576×576, 23.5 → 20.8 for 576×1536,
//! 708 → 610 for the 49152-wide output head; a whole 4 × 320 forward 4.32 → 3.68 s. libtorch
//! registers the two operators (`mkldnn::_reorder_linear_weight`, `mkldnn::_linear_pointwise`)
//! but tch does not bind them, so `shim.cpp` calls them through torch's dispatcher.
//!
//! The packed copy is a second copy of the weight, made on first use and kept while the
//! weight is unchanged (same address, same in-place modification count). Only inference uses
//! it: autograd cannot differentiate these operators, and a forward with gradients means the
//! weights are about to change, so it drops the copy rather than keep a stale one in memory.
//! (Frozen weights under LoRA adapters could train on packed copies, with a packed transpose
//! for the input's gradient: tried, with an autograd function around these operators, and a
//! LoRA step of SmolLM2-135M ran no faster on an AMD EPYC Zen 4 — libtorch's f32 product on
//! a packed weight runs the same MKL `sgemm` kernels there — for two more copies of every
//! weight, so it was left out.)
//! Everything else — gradients, other dtypes, other devices, a libtorch without oneDNN —
//! goes through torch's `linear`.

use std::ffi::{CStr, c_char, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Device, Kind, Tensor};

unsafe extern "C" {
    fn rlmec_free_error(error: *mut c_char);
    fn rlmec_grad_enabled() -> bool;
    fn rlmec_tensor_version(t: *const c_void, out: *mut i64) -> *mut c_char;
    fn rlmec_onednn_pack(
        weight: *const c_void,
        batch_hint: i64,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn rlmec_onednn_linear(
        x: *const c_void,
        packed: *const c_void,
        bias: *const c_void,
        out: *mut *mut c_void,
    ) -> *mut c_char;
}

/// The row count oneDNN is told to expect when packing; any count works with the result
/// (measured: 16 and 1280 give the same speed from 16 to 1280 rows, 1 is slower).
const BATCH_HINT: i64 = 1024;

/// Set after the first failure of any kind (e.g. a libtorch built without oneDNN): from then
/// on every product goes to torch, and one warning says why.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Whether autograd records operations on this thread (false inside `tch::no_grad`).
fn grad_enabled() -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { rlmec_grad_enabled() }
}

/// A linear layer's prepacked weight, made on demand.
#[derive(Debug)]
pub struct PackedWeight {
    /// False: never pack (saves the copy's memory); every product goes to torch.
    enabled: bool,
    cache: Mutex<Option<Pack>>,
}

#[derive(Debug)]
struct Pack {
    packed: Tensor,
    /// Identity of the weight it was made from: its data address and modification count.
    source: (usize, i64),
}

impl PackedWeight {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            cache: Mutex::new(None),
        }
    }

    /// `x·Wᵀ + b` for `x` [..., in] and `weight` [out, in] through the packed copy, or `None`
    /// where it does not apply: packing off, not f32 on the CPU, gradients on, or no oneDNN.
    pub fn linear(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Option<Tensor> {
        if !self.enabled {
            return None;
        }
        if grad_enabled() {
            self.release();
            return None;
        }
        let cpu_f32 = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
        if UNAVAILABLE.load(Ordering::Relaxed)
            || !cpu_f32(x)
            || !cpu_f32(weight)
            || !bias.is_none_or(cpu_f32)
        {
            return None;
        }
        let packed = self.packed(weight)?;
        let mut out = std::ptr::null_mut();
        let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr() as *const c_void);
        // SAFETY: the pointers are live tensors for the call; `out` receives a new tensor.
        let error = unsafe {
            rlmec_onednn_linear(
                x.as_ptr() as *const c_void,
                packed.as_ptr() as *const c_void,
                bias,
                &mut out,
            )
        };
        checked(error, "oneDNN linear")?;
        // SAFETY: on success `out` is a tensor allocated by the shim, now owned here.
        Some(unsafe { Tensor::from_ptr(out as _) })
    }

    /// Drop the packed copy (its memory), if any.
    pub fn release(&self) {
        self.lock().take();
    }

    /// The packed copy of `weight`, made now if there is none or the weight has changed.
    fn packed(&self, weight: &Tensor) -> Option<Tensor> {
        let source = (weight.data_ptr() as usize, version(weight)?);
        let mut cache = self.lock();
        if let Some(pack) = cache.as_ref().filter(|p| p.source == source) {
            return Some(pack.packed.shallow_clone());
        }
        // Free the stale copy before making the new one: never two at once.
        *cache = None;
        // oneDNN reorders a row-major weight several times faster than our column-major one,
        // even counting the copy, which lives only for the call (one core: 576×576 1.7 ms
        // against 10.6, 1536×576 4 against 7.4; the 49152×576 head 117 against 130).
        let row_major = weight.contiguous();
        let mut out = std::ptr::null_mut();
        // SAFETY: `row_major` is live for the call; `out` receives a new tensor.
        let error =
            unsafe { rlmec_onednn_pack(row_major.as_ptr() as *const c_void, BATCH_HINT, &mut out) };
        checked(error, "oneDNN weight packing")?;
        // SAFETY: on success `out` is a tensor allocated by the shim, now owned here.
        let packed = unsafe { Tensor::from_ptr(out as _) };
        *cache = Some(Pack {
            packed: packed.shallow_clone(),
            source,
        });
        Some(packed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pack>> {
        // A panic while holding the lock leaves at worst no copy or a complete one.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The in-place modification count of `t` (optimiser steps and checkpoint loads bump it).
fn version(t: &Tensor) -> Option<i64> {
    let mut out = 0;
    // SAFETY: `t` is live for the call.
    let error = unsafe { rlmec_tensor_version(t.as_ptr() as *const c_void, &mut out) };
    checked(error, "tensor version")?;
    Some(out)
}

/// `None` (and torch from now on) if the shim reported an error.
fn checked(error: *mut c_char, what: &str) -> Option<()> {
    if error.is_null() {
        return Some(());
    }
    // SAFETY: a non-null error is a NUL-terminated string the shim allocated.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: freed once, by the shim's allocator.
    unsafe { rlmec_free_error(error) };
    if !UNAVAILABLE.swap(true, Ordering::Relaxed) {
        tracing::warn!("{what} failed, using torch's linear from now on: {message}");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn matches_torch_linear_with_and_without_bias_on_column_major_weights() {
        tch::set_num_threads(1);
        let w = Tensor::randn([48, 40], (Kind::Float, Device::Cpu)).tr(); // [40, 48], column-major
        let b = Tensor::randn([40], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([3, 7, 48], (Kind::Float, Device::Cpu));
        let packed = PackedWeight::new(true);
        crate::grad::no_grad(|| {
            let got = packed
                .linear(&x, &w, Some(&b))
                .expect("oneDNN is in libtorch");
            assert_eq!(got.size(), [3, 7, 40]);
            assert!(close(&got, &x.linear(&w, Some(&b))) < 1e-4);
            let got = packed.linear(&x, &w, None).unwrap();
            assert!(close(&got, &x.linear::<Tensor>(&w, None)) < 1e-4);
        });
    }

    #[test]
    fn a_changed_weight_is_packed_again_and_gradients_release_the_copy() {
        tch::set_num_threads(1);
        let mut w = Tensor::randn([16, 24], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([5, 24], (Kind::Float, Device::Cpu));
        let packed = PackedWeight::new(true);
        let before = crate::grad::no_grad(|| packed.linear(&x, &w, None)).unwrap();
        crate::grad::no_grad(|| {
            w += 1.0;
        });
        let after = crate::grad::no_grad(|| packed.linear(&x, &w, None)).unwrap();
        assert!(close(&after, &x.linear::<Tensor>(&w, None)) < 1e-4);
        assert!(close(&after, &before) > 1.0, "the stale copy was used");
        assert!(packed.lock().is_some());
        assert!(
            packed.linear(&x, &w, None).is_none(),
            "no autograd through oneDNN"
        );
        assert!(
            packed.lock().is_none(),
            "a forward with gradients drops the copy"
        );
    }

    #[test]
    fn other_dtypes_and_packing_off_go_to_torch() {
        let w = Tensor::randn([8, 8], (Kind::BFloat16, Device::Cpu));
        let x = Tensor::randn([2, 8], (Kind::BFloat16, Device::Cpu));
        assert!(crate::grad::no_grad(|| PackedWeight::new(true).linear(&x, &w, None)).is_none());
        let (w, x) = (w.to_kind(Kind::Float), x.to_kind(Kind::Float));
        let off = PackedWeight::new(false);
        assert!(crate::grad::no_grad(|| off.linear(&x, &w, None)).is_none());
        assert!(off.lock().is_none());
    }
}
