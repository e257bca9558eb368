//! Running out of memory in a training step ([`crate::oom`]): an error that says so and
//! names the knobs that help.

use super::TrainError;
use super::options::TrainOptions;
use crate::oom::OutOfMemory;

/// A step that ran out of memory becomes an error that says so and names the knobs that
/// help.
pub(super) fn out_of_memory(oom: OutOfMemory, step: usize, opts: &TrainOptions) -> TrainError {
    let mut knobs = Vec::new();
    if opts.lora.is_none() {
        knobs.push(
            "`lora: #{r: 16}` (train adapters: no gradients or optimiser state for the weights)"
                .to_string(),
        );
    }
    if !opts.grad_checkpoint {
        knobs.push("`grad_checkpoint: true` (keep one layer's activations instead of all)".into());
    }
    if opts.batch_size > 1 {
        knobs.push(format!(
            "a smaller `batch_size` (now {}) with a larger `grad_accum` (now {}): the same effective batch",
            opts.batch_size, opts.grad_accum
        ));
    }
    knobs.push(format!("a smaller `max_len` (now {})", opts.max_len));
    TrainError::OutOfMemory {
        step,
        message: format!("{oom}; what helps: {}", knobs.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_memory_step_names_the_knobs_that_help() {
        let opts = TrainOptions::default();
        let oom = |message: &str| crate::oom::from_message(message).unwrap();
        let gpu = oom(
            "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\\nframe #0 ...\")",
        );
        let message = out_of_memory(gpu, 4, &opts).to_string();
        assert!(
            message.starts_with("train: step 5: the GPU ran out of memory"),
            "{message}"
        );
        for knob in [
            "lora",
            "grad_checkpoint",
            "batch_size",
            "grad_accum",
            "max_len",
        ] {
            assert!(message.contains(knob), "{knob} missing: {message}");
        }
        assert!(
            !message.contains("frame #0"),
            "no libtorch backtrace: {message}"
        );
        // Knobs already in use are not suggested again.
        let lean = TrainOptions {
            lora: Some(crate::model::lora::LoraConfig::default()),
            grad_checkpoint: true,
            batch_size: 1,
            ..TrainOptions::default()
        };
        let cpu = oom("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes");
        let message = out_of_memory(cpu, 0, &lean).to_string();
        assert!(message.contains("the CPU ran out of memory"), "{message}");
        assert!(
            !message.contains("`lora") && !message.contains("`grad_checkpoint"),
            "{message}"
        );
    }
}
