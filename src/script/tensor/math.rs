//! Tensor operations: arithmetic with tensors or numbers on either side, element-wise
//! functions, reductions, comparisons as 0/1 masks, selection and indexing. Gradients flow
//! through all of them.

use rhai::plugin::*;

// No `///` on the module: its doc would be appended to the domain's (`tensor_api`'s).
#[export_module]
pub mod math_api {
    use super::super::{Res, TensorHandle, binary, fits, operand, torch};

    type Tensor = TensorHandle;

    /// Element-wise sum; either side may be a number.
    ///
    /// ```rhai
    /// let t = tensor([1.0, 2.0]) + 1;
    /// let u = 0.5 + t + t;
    /// ```
    #[rhai_fn(name = "+", return_raw)]
    pub fn add(a: &mut Tensor, b: Dynamic) -> Res<Tensor> {
        let a = a.get();
        binary("+", &a, &operand(&b, &a, "+")?, |x, y| x.f_add(y))
    }

    /// Element-wise sum with a number on the left.
    ///
    /// ```rhai
    /// let t = 1.0 + tensor([1.0, 2.0]);
    /// ```
    #[rhai_fn(name = "+", return_raw)]
    pub fn radd(a: Dynamic, b: Tensor) -> Res<Tensor> {
        let b = b.get();
        binary("+", &operand(&a, &b, "+")?, &b, |x, y| x.f_add(y))
    }

    /// Element-wise difference; either side may be a number.
    ///
    /// ```rhai
    /// let t = tensor([1.0, 2.0]) - tensor([0.5, 0.5]);
    /// ```
    #[rhai_fn(name = "-", return_raw)]
    pub fn sub(a: &mut Tensor, b: Dynamic) -> Res<Tensor> {
        let a = a.get();
        binary("-", &a, &operand(&b, &a, "-")?, |x, y| x.f_sub(y))
    }

    /// Element-wise difference with a number on the left.
    ///
    /// ```rhai
    /// let t = 1 - tensor([0.25, 0.5]);
    /// ```
    #[rhai_fn(name = "-", return_raw)]
    pub fn rsub(a: Dynamic, b: Tensor) -> Res<Tensor> {
        let b = b.get();
        binary("-", &operand(&a, &b, "-")?, &b, |x, y| x.f_sub(y))
    }

    /// Negation.
    ///
    /// ```rhai
    /// let t = -tensor([1.0, -2.0]);
    /// ```
    #[rhai_fn(name = "-")]
    pub fn neg(a: Tensor) -> Tensor {
        TensorHandle::new(-a.get())
    }

    /// Element-wise product; either side may be a number.
    ///
    /// ```rhai
    /// let t = tensor([1.0, 2.0]) * 3;
    /// ```
    #[rhai_fn(name = "*", return_raw)]
    pub fn mul(a: &mut Tensor, b: Dynamic) -> Res<Tensor> {
        let a = a.get();
        binary("*", &a, &operand(&b, &a, "*")?, |x, y| x.f_mul(y))
    }

    /// Element-wise product with a number on the left.
    ///
    /// ```rhai
    /// let t = 0.5 * tensor([1.0, 2.0]);
    /// ```
    #[rhai_fn(name = "*", return_raw)]
    pub fn rmul(a: Dynamic, b: Tensor) -> Res<Tensor> {
        let b = b.get();
        binary("*", &operand(&a, &b, "*")?, &b, |x, y| x.f_mul(y))
    }

    /// Element-wise quotient; either side may be a number.
    ///
    /// ```rhai
    /// let t = tensor([1.0, 2.0]) / 4;
    /// ```
    #[rhai_fn(name = "/", return_raw)]
    pub fn div(a: &mut Tensor, b: Dynamic) -> Res<Tensor> {
        let a = a.get();
        binary("/", &a, &operand(&b, &a, "/")?, |x, y| x.f_div(y))
    }

    /// Element-wise quotient with a number on the left.
    ///
    /// ```rhai
    /// let t = 1 / tensor([2.0, 4.0]);
    /// ```
    #[rhai_fn(name = "/", return_raw)]
    pub fn rdiv(a: Dynamic, b: Tensor) -> Res<Tensor> {
        let b = b.get();
        binary("/", &operand(&a, &b, "/")?, &b, |x, y| x.f_div(y))
    }

    /// Element-wise `e^x`.
    ///
    /// ```rhai
    /// let t = tensor([0.0, 1.0]).exp();
    /// ```
    pub fn exp(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().exp())
    }

    /// Element-wise natural logarithm.
    ///
    /// ```rhai
    /// let t = tensor([1.0, 2.718281828]).log();
    /// ```
    pub fn log(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().log())
    }

    /// Element-wise absolute value.
    ///
    /// ```rhai
    /// let t = tensor([-1.0, 2.0]).abs();
    /// ```
    pub fn abs(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().abs())
    }

    /// Element-wise square root.
    ///
    /// ```rhai
    /// let t = tensor([4.0, 9.0]).sqrt();
    /// ```
    pub fn sqrt(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().sqrt())
    }

    /// Element-wise power.
    ///
    /// ```rhai
    /// let t = tensor([2.0, 3.0]).pow(2.0);
    /// ```
    pub fn pow(t: &mut Tensor, exponent: f64) -> Tensor {
        TensorHandle::new(t.get().pow_tensor_scalar(exponent))
    }

    /// Values limited to `[lo, hi]`.
    ///
    /// ```rhai
    /// let ratio = tensor([0.5, 1.0, 2.0]);
    /// let clipped = ratio.clamp(0.7, 1.3);   // [0.7, 1.0, 1.3]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn clamp(t: &mut Tensor, lo: f64, hi: f64) -> Res<Tensor> {
        let t = t.get();
        fits(lo, t.kind(), "clamp")?;
        fits(hi, t.kind(), "clamp")?;
        torch("clamp", || t.f_clamp(lo, hi)).map(TensorHandle::new)
    }

    /// Element-wise minimum of a tensor and a tensor or a number.
    ///
    /// ```rhai
    /// let a = tensor([1.0, 5.0]);
    /// let m = min(a, tensor([2.0, 3.0]));   // [1.0, 3.0]
    /// let n = min(a, 2.0);                  // [1.0, 2.0]
    /// ```
    #[rhai_fn(name = "min", return_raw)]
    pub fn minimum(a: Tensor, b: Dynamic) -> Res<Tensor> {
        let a = a.get();
        binary("min", &a, &operand(&b, &a, "min")?, |x, y| x.f_minimum(y))
    }

    /// Element-wise maximum of a tensor and a tensor or a number.
    ///
    /// ```rhai
    /// let count = max(tensor([0.0]), 1.0);   // guard a division
    /// ```
    #[rhai_fn(name = "max", return_raw)]
    pub fn maximum(a: Tensor, b: Dynamic) -> Res<Tensor> {
        let a = a.get();
        binary("max", &a, &operand(&b, &a, "max")?, |x, y| x.f_maximum(y))
    }

    /// Sum of all elements (a scalar tensor).
    ///
    /// ```rhai
    /// let s = tensor([[1.0, 2.0], [3.0, 4.0]]).sum();   // 10
    /// ```
    pub fn sum(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().sum(tch::Kind::Float))
    }

    /// Sum along dimension `dim` (negative counts from the end).
    ///
    /// ```rhai
    /// let per_row = tensor([[1.0, 2.0], [3.0, 4.0]]).sum(-1);   // [3, 7]
    /// ```
    #[rhai_fn(name = "sum", return_raw)]
    pub fn sum_dim(t: &mut Tensor, dim: i64) -> Res<Tensor> {
        let t = t.get();
        torch("sum", || t.f_sum_dim_intlist(dim, false, tch::Kind::Float)).map(TensorHandle::new)
    }

    /// Mean of all elements (a scalar tensor).
    ///
    /// ```rhai
    /// let m = tensor([1.0, 2.0, 3.0]).mean();   // 2
    /// ```
    pub fn mean(t: &mut Tensor) -> Tensor {
        TensorHandle::new(t.get().mean(tch::Kind::Float))
    }

    /// Mean along dimension `dim`.
    ///
    /// ```rhai
    /// let per_row = tensor([[1.0, 3.0], [3.0, 5.0]]).mean(1);   // [2, 4]
    /// ```
    #[rhai_fn(name = "mean", return_raw)]
    pub fn mean_dim(t: &mut Tensor, dim: i64) -> Res<Tensor> {
        let t = t.get();
        torch("mean", || t.f_mean_dim(dim, false, tch::Kind::Float)).map(TensorHandle::new)
    }

    /// 1.0 where the element differs from `x` (a number or tensor), else 0.0.
    ///
    /// ```rhai
    /// let reward = tensor([0.0, -0.1, 0.2]);
    /// let count = reward.ne(0.0).sum();   // 2
    /// ```
    #[rhai_fn(return_raw)]
    pub fn ne(t: &mut Tensor, x: Dynamic) -> Res<Tensor> {
        let t = t.get();
        let x = operand(&x, &t, "ne")?;
        torch("ne", || t.f_ne_tensor(&x)?.f_to_kind(t.kind())).map(TensorHandle::new)
    }

    /// 1.0 where the element equals `x`, else 0.0.
    ///
    /// ```rhai
    /// let m = tensor([1.0, 2.0]).eq(2.0);   // [0, 1]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn eq(t: &mut Tensor, x: Dynamic) -> Res<Tensor> {
        let t = t.get();
        let x = operand(&x, &t, "eq")?;
        torch("eq", || t.f_eq_tensor(&x)?.f_to_kind(t.kind())).map(TensorHandle::new)
    }

    /// 1.0 where the element is greater than `x`, else 0.0.
    ///
    /// ```rhai
    /// let positive = tensor([-0.1, 0.0, 0.3]).gt(0.0);   // [0, 0, 1]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn gt(t: &mut Tensor, x: Dynamic) -> Res<Tensor> {
        let t = t.get();
        let x = operand(&x, &t, "gt")?;
        torch("gt", || t.f_gt_tensor(&x)?.f_to_kind(t.kind())).map(TensorHandle::new)
    }

    /// 1.0 where the element is less than `x`, else 0.0.
    ///
    /// ```rhai
    /// let negative = tensor([-0.1, 0.0, 0.3]).lt(0.0);   // [1, 0, 0]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn lt(t: &mut Tensor, x: Dynamic) -> Res<Tensor> {
        let t = t.get();
        let x = operand(&x, &t, "lt")?;
        torch("lt", || t.f_lt_tensor(&x)?.f_to_kind(t.kind())).map(TensorHandle::new)
    }

    /// `a` where `mask` is non-zero, else `b` (tensors or numbers).
    ///
    /// ```rhai
    /// let r = tensor([0.2, -0.1]);
    /// let sign = select(r.gt(0.0), 1.0, -1.0);   // [1, -1]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn select(mask: Tensor, a: Dynamic, b: Dynamic) -> Res<Tensor> {
        let mask = mask.get();
        let (a, b) = (operand(&a, &mask, "select")?, operand(&b, &mask, "select")?);
        torch("select", || a.f_where_self(&mask.f_ne(0.0)?, &b)).map(TensorHandle::new)
    }

    /// Values picked along `dim` at the integer positions of `index` (a tensor of the same
    /// rank), as `torch.gather`.
    ///
    /// ```rhai
    /// let t = tensor([[0.1, 0.9], [0.7, 0.3]]);
    /// let picked = t.gather(1, tensor([[1.0], [0.0]]));   // [[0.9], [0.7]]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn gather(t: &mut Tensor, dim: i64, index: Tensor) -> Res<Tensor> {
        let t = t.get();
        let index = index.get();
        torch("gather", || {
            t.f_gather(dim, &index.f_to_kind(tch::Kind::Int64)?, false)
        })
        .map(TensorHandle::new)
    }

    /// A new dimension of size 1 at `dim` (to broadcast a per-row value over tokens).
    ///
    /// ```rhai
    /// let per_row = tensor([1.0, 2.0]).unsqueeze(1);   // shape [2, 1]
    /// let spread = per_row * tensor([[1.0, 1.0], [1.0, 0.0]]);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn unsqueeze(t: &mut Tensor, dim: i64) -> Res<Tensor> {
        let t = t.get();
        torch("unsqueeze", || t.f_unsqueeze(dim)).map(TensorHandle::new)
    }
}
