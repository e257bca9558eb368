//! Running out of memory: libtorch throws, tch panics. [`catch`] turns such a panic into an
//! [`OutOfMemory`] (which device, libtorch's own first line) that callers complete with the
//! knobs that help; any other panic goes on unwinding.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// An allocation libtorch could not make.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfMemory {
    /// "GPU" or "CPU".
    pub device: &'static str,
    /// libtorch's message, first line, without tch's `unwrap` wrapper or the C++ frames.
    pub detail: String,
}

impl std::fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} ran out of memory ({})", self.device, self.detail)
    }
}

/// Run `f`; an out-of-memory panic inside it becomes an error. `f` must leave no state
/// behind that a panic half-way would corrupt (scoped guards, such as
/// [`crate::grad::no_grad`]'s, are restored as the panic unwinds; `tch::no_grad` is not).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, OutOfMemory> {
    catch_unwind(AssertUnwindSafe(f)).map_err(from_panic)
}

/// The out-of-memory error a panic carries; any other panic resumes unwinding.
fn from_panic(panic: Box<dyn std::any::Any + Send>) -> OutOfMemory {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    match from_message(&message) {
        Some(oom) => oom,
        None => resume_unwind(panic),
    }
}

/// The out-of-memory error a panic's message describes, if it does.
pub fn from_message(message: &str) -> Option<OutOfMemory> {
    let lower = message.to_lowercase();
    if !(lower.contains("out of memory") || lower.contains("can't allocate memory")) {
        return None;
    }
    Some(OutOfMemory {
        device: if lower.contains("cuda") { "GPU" } else { "CPU" },
        detail: libtorch_first_line(message),
    })
}

/// libtorch's own first line in a tch panic message (`called Result::unwrap() on an Err
/// value: Torch("…\nframe #0 …")`): what it says, without the wrapper or the C++ frames.
/// Any other message: its first line.
pub fn libtorch_first_line(message: &str) -> String {
    match message.split_once("Torch(\"") {
        // The text is Rust's `Debug` of a string: newlines and quotes escaped.
        Some((_, detail)) => {
            let line = detail.split("\\n").next().unwrap_or_default();
            let line = line.lines().next().unwrap_or_default();
            let line = line.strip_suffix("\")").unwrap_or(line);
            line.replace("\\\"", "\"")
        }
        None => message.lines().next().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_failure_is_caught_and_named_without_the_backtrace() {
        let err = catch(|| -> () {
            panic!(
                "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\\nframe #0 ...\")"
            )
        })
        .unwrap_err();
        assert_eq!(err.device, "GPU");
        assert_eq!(err.detail, "CUDA out of memory. Tried to allocate 2.00 GiB");
        let cpu = from_panic(Box::new(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes",
        ));
        assert_eq!(cpu.device, "CPU");
        assert_eq!(catch(|| 3), Ok(3));
    }

    #[test]
    fn libtorch_speaks_its_first_line_only() {
        let panic = "called `Result::unwrap()` on an `Err` value: Torch(\"index out of range in self\\nException raised from …\\nframe #0: c10::Error\")";
        assert_eq!(libtorch_first_line(panic), "index out of range in self");
        assert_eq!(libtorch_first_line("unknown \"x\"\nmore"), "unknown \"x\"");
        let quoted = "Torch(\"expected \\\"cpu\\\" device\")";
        assert_eq!(libtorch_first_line(quoted), "expected \"cpu\" device");
    }

    #[test]
    fn other_panics_keep_unwinding() {
        let caught = std::panic::catch_unwind(|| catch(|| panic!("index out of range")));
        assert!(caught.is_err());
    }

    #[test]
    fn a_real_allocation_failure_is_caught() {
        // 2^62 bytes: no machine has them; libtorch refuses at once (nothing is touched).
        let err = catch(|| tch::Tensor::zeros([1i64 << 60], (tch::Kind::Float, tch::Device::Cpu)))
            .unwrap_err();
        assert_eq!(err.device, "CPU");
        assert!(err.detail.contains("allocate"), "{}", err.detail);
    }
}
