//! Tensor natives: thin handles over torch tensors, so that a script can define a training
//! objective from the per-token quantities of a batch. This file holds the handle, making a
//! tensor and reading one back; `math.rs` the operations.

use std::sync::{Arc, Mutex};

use rhai::plugin::*;

use super::engine::Domain;

mod math;

pub const DOMAIN: Domain = Domain {
    name: "tensor",
    module: || {
        let mut module = exported_module!(tensor_api);
        module.combine_flatten(exported_module!(math::math_api));
        module
    },
    extra: |_| {},
};

/// A torch tensor held by a script. Cloning shares the tensor (as Python references do).
#[derive(Clone)]
pub struct TensorHandle(Arc<Mutex<tch::Tensor>>);

impl TensorHandle {
    pub fn new(t: tch::Tensor) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }

    /// The tensor (shares storage and autograd history).
    pub fn get(&self) -> tch::Tensor {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shallow_clone()
    }
}

pub(super) type Res<T> = Result<T, Box<EvalAltResult>>;

/// A tensor, or a number broadcast as one (on `like`'s device and dtype).
pub(super) fn operand(value: &Dynamic, like: &tch::Tensor, what: &str) -> Res<tch::Tensor> {
    if let Some(t) = value.read_lock::<TensorHandle>() {
        return Ok(t.get());
    }
    let x = value
        .as_float()
        .or_else(|_| value.as_int().map(|i| i as f64))
        .map_err(|_| {
            format!(
                "{what}: expected a Tensor or a number, got {}",
                value.type_name()
            )
        })?;
    fits(x, like.kind(), what)?;
    Ok(tch::Tensor::scalar_tensor(x, (like.kind(), like.device())))
}

/// A finite number a tensor of `kind` cannot hold (1e308 for f32) is an error naming it.
/// Checked here because libtorch throws on it inside tch's `Scalar`, whose drop then panics
/// even in the fallible `f_` functions.
pub(super) fn fits(x: f64, kind: tch::Kind, what: &str) -> Res<()> {
    let largest = match kind {
        tch::Kind::Float => f64::from(f32::MAX),
        tch::Kind::BFloat16 => 3.389_531_389_251_535_5e38,
        tch::Kind::Half => 65504.0,
        _ => f64::INFINITY,
    };
    if x.is_finite() && x.abs() > largest {
        // `{:?}` writes 1e308 as such, where `{}` writes all 309 digits.
        return Err(
            format!("{what}: {x:?} does not fit a {kind:?} tensor (largest {largest:e})").into(),
        );
    }
    Ok(())
}

/// Runs a torch operation, turning its errors (shape mismatches …) into script errors.
pub(super) fn torch<T>(what: &str, f: impl FnOnce() -> Result<T, tch::TchError>) -> Res<T> {
    f().map_err(|e| {
        let text = e.to_string();
        // tch's own prefix says nothing to a script author; libtorch's frames follow line 1.
        let text = text.strip_prefix("Internal torch error: ").unwrap_or(&text);
        let first = text.lines().next().unwrap_or_default();
        format!("{what}: {first}").into()
    })
}

pub(super) fn binary(
    what: &str,
    a: &tch::Tensor,
    b: &tch::Tensor,
    op: fn(&tch::Tensor, &tch::Tensor) -> Result<tch::Tensor, tch::TchError>,
) -> Res<TensorHandle> {
    torch(what, || op(a, b)).map(TensorHandle::new)
}

/// Tensors: arithmetic (`+ - * /` with tensors or numbers, either side), `exp`, `log`,
/// `clamp`, `min`/`max`, `sum`/`mean`, comparisons as 0/1 masks, `gather`, `detach`,
/// `shape`. A training objective receives a map of them (see `m.train`) and returns a
/// scalar tensor; gradients flow through everything but `detach`.
#[export_module]
pub mod tensor_api {
    use rhai::Array;

    use super::{Res, TensorHandle, torch};

    /// A torch tensor (f32 unless made otherwise).
    pub type Tensor = TensorHandle;

    /// A tensor from an array of numbers, or an array of equally long arrays (2-D).
    ///
    /// ```rhai
    /// let t = tensor([[1.0, 2.0], [3.0, 4.0]]);
    /// print(t.shape);   // [2, 2]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn tensor(values: Array) -> Res<Tensor> {
        let number = |v: &Dynamic, at: String| -> Res<f32> {
            let x = v
                .as_float()
                .or_else(|_| v.as_int().map(|i| i as f64))
                .map_err(|_| format!("tensor: element {at} is {}, not a number", v.type_name()))?;
            super::fits(x, tch::Kind::Float, &format!("tensor: element {at}"))?;
            Ok(x as f32)
        };
        let rows: Option<Vec<Array>> = values
            .iter()
            .map(|v| v.read_lock::<Array>().map(|a| a.clone()))
            .collect();
        let Some(rows) = rows.filter(|rows| !rows.is_empty()) else {
            let flat = (values.iter().enumerate())
                .map(|(i, v)| number(v, format!("[{i}]")))
                .collect::<Res<Vec<f32>>>()?;
            return Ok(TensorHandle::new(tch::Tensor::from_slice(&flat)));
        };
        let width = rows[0].len();
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            let n = row.len();
            return Err(format!("tensor: row {i} has {n} elements, row 0 has {width}").into());
        }
        let flat = (rows.iter().enumerate())
            .flat_map(|(i, row)| {
                (row.iter().enumerate()).map(move |(j, v)| number(v, format!("[{i}][{j}]")))
            })
            .collect::<Res<Vec<f32>>>()?;
        let shape = [rows.len() as i64, width as i64];
        Ok(TensorHandle::new(
            tch::Tensor::from_slice(&flat).view(shape),
        ))
    }

    /// The same values without gradient history (no gradient flows back through it).
    ///
    /// ```rhai
    /// let ratio = tensor([0.1]).exp().detach();
    /// ```
    pub fn detach(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().detach())
    }

    /// A tensor of zeros shaped like `t`.
    ///
    /// ```rhai
    /// let z = tensor([1.0, 2.0]).zeros_like();
    /// ```
    pub fn zeros_like(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().zeros_like())
    }

    /// A tensor of ones shaped like `t`.
    ///
    /// ```rhai
    /// let o = tensor([1.0, 2.0]).ones_like();
    /// ```
    pub fn ones_like(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().ones_like())
    }

    /// The dimensions, e.g. `[8, 200]` for a batch's per-token tensors.
    ///
    /// ```rhai
    /// print(tensor([[1.0, 2.0, 3.0]]).shape);   // [1, 3]
    /// ```
    #[rhai_fn(get = "shape")]
    pub fn shape(t: &mut Tensor) -> Array {
        t.get().size().into_iter().map(Dynamic::from_int).collect()
    }

    /// The value of a one-element tensor.
    ///
    /// ```rhai
    /// let x = tensor([1.0, 2.0]).sum().item();   // 3.0
    /// ```
    #[rhai_fn(return_raw)]
    pub fn item(t: &mut Tensor) -> Res<f64> {
        let t = t.get();
        if t.numel() != 1 {
            return Err(format!("item: the tensor has {} elements, not 1", t.numel()).into());
        }
        torch("item", || t.f_double_value(&[]))
    }

    /// The values as an array of floats (flattened).
    ///
    /// ```rhai
    /// let xs = tensor([[1.0, 2.0], [3.0, 4.0]]).to_array();   // [1.0, 2.0, 3.0, 4.0]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn to_array(t: &mut Tensor) -> Res<Array> {
        let t = t.get();
        let flat = torch("to_array", || {
            t.f_detach()?
                .f_to_kind(tch::Kind::Double)?
                .f_to_device(tch::Device::Cpu)?
                .f_flatten(0, -1)
        })?;
        let values = Vec::<f64>::try_from(&flat).map_err(|e| format!("to_array: {e}"))?;
        Ok(values.into_iter().map(Dynamic::from_float).collect())
    }

    /// `Tensor[2, 3]`, or the value of a one-element tensor: what `print` shows.
    ///
    /// ```rhai
    /// print(tensor([1.0, 2.0]));
    /// ```
    #[rhai_fn(name = "to_string", name = "to_debug")]
    pub fn describe(t: &mut Tensor) -> String {
        let t = t.get();
        if t.numel() == 1 {
            format!("Tensor({})", t.double_value(&[]))
        } else {
            format!("Tensor{:?}", t.size())
        }
    }
}
