//! Autograd switched off for a closure, panic-safely: tch's `no_grad` turns it back on only
//! when the closure returns, so an out-of-memory panic caught by [`crate::oom::catch`] (and
//! a training run that goes on after it) would be left with autograd off.

/// Run `f` without recording gradients; they are recorded again however `f` ends.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = tch::no_grad_guard();
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_inside_leaves_gradients_on() {
        let caught = std::panic::catch_unwind(|| super::no_grad(|| panic!("out of memory")));
        assert!(caught.is_err());
        let x =
            tch::Tensor::ones([2], (tch::Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        assert!((&x * 2.0).requires_grad(), "autograd is still off");
    }
}
