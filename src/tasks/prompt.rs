//! The policy prompt (docs/method.md, "Data shapes"): the Alpaca header, the problem, and the
//! response opener — `Let's think step by step.` and a newline for QA, nothing after
//! `### Response:` for math (where the public code puts one newline, not two, before
//! `### Instruction:`; `paper` fidelity keeps that).

use super::{Fidelity, TaskKind};

const HEADER: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.";

pub fn policy_prompt(kind: TaskKind, problem: &str, fidelity: Fidelity) -> String {
    match (kind, fidelity) {
        (TaskKind::Qa, _) => format!(
            "{HEADER}\n\n### Instruction:\n{problem}\n\n### Response: Let's think step by step.\n"
        ),
        (TaskKind::Math, Fidelity::Corrected) => {
            format!("{HEADER}\n\n### Instruction:\n{problem}\n\n### Response:")
        }
        (TaskKind::Math, Fidelity::Paper) => {
            format!("{HEADER}\n### Instruction:\n{problem}\n\n### Response:")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qa_prompt_is_exact() {
        assert_eq!(
            policy_prompt(TaskKind::Qa, "Q?\nOptions:\na\nb", Fidelity::Corrected),
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nQ?\nOptions:\na\nb\n\n### Response: Let's think step by step.\n"
        );
    }

    #[test]
    fn math_prompt_ends_at_response() {
        let p = policy_prompt(TaskKind::Math, "2+2?", Fidelity::Corrected);
        assert!(p.ends_with("\n\n### Instruction:\n2+2?\n\n### Response:"));
        let paper = policy_prompt(TaskKind::Math, "2+2?", Fidelity::Paper);
        assert!(paper.contains("request.\n### Instruction:\n"));
    }
}
