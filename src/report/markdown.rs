//! `report.md`: the summary in plain text — accuracy, training, the GRM beside the
//! teacher, teacher spend, stage timings — for a terminal, a notebook or a pull request.

use std::fmt::Write;

use super::edits::EditComparison;
use super::{Report, cost_text, pct};
use crate::run::status::duration;

pub(crate) fn summary(r: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# {}\n\nScript: `{}`. Full report: [report.html](report.html).\n",
        r.title,
        r.script.as_deref().unwrap_or("unknown")
    );
    m.push_str("## Accuracy\n\n");
    if r.evaluations.is_empty() {
        m.push_str("No evaluation finished.\n");
    } else {
        m.push_str(
            "| model (stage) | accuracy % | 95% CI | correct | n |\n|---|---:|---:|---:|---:|\n",
        );
        for e in &r.evaluations {
            let _ = writeln!(
                m,
                "| {} ({}) | {} | {} | {} | {} |",
                e.model(),
                e.stage,
                pct(e.accuracy),
                e.ci_text(),
                e.correct,
                e.n
            );
        }
        m.push_str("\n95% Wilson intervals: where two overlap, the difference may be noise.\n");
    }
    m.push_str("\n## Training\n\n");
    if r.trainings.is_empty() {
        m.push_str("No training stage has metrics.\n");
    } else {
        m.push_str(
            "| stage | steps | first loss | final loss | state | metrics |\n|---|---:|---:|---:|---|---|\n",
        );
        for t in &r.trainings {
            let loss = t.columns.get("loss");
            let at = |i: Option<&f64>| i.map_or("-".into(), |v| format!("{v:.4}"));
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | [{p}]({p}) |",
                t.stage,
                t.steps.len(),
                at(loss.and_then(|l| l.first())),
                at(loss.and_then(|l| l.last())),
                t.state,
                p = t.metrics.display()
            );
        }
    }
    if let Some(e) = &r.edits {
        let median = EditComparison::median_text;
        let _ = writeln!(
            m,
            "\n## The GRM beside the teacher\n\n{}.\nMedian edit distance of a correct fix ({}): \
             teacher {}, GRM {}.",
            e.line(),
            e.unit,
            median(&e.teacher_distances),
            median(&e.grm_distances)
        );
        if let Some((t, g)) = e.wrong_arithmetic {
            let _ = writeln!(
                m,
                "Correct fixes whose arithmetic is still wrong (right answer, wrong calculation \
                 on the way): teacher {t}, GRM {g}."
            );
        }
    }
    if let Some(stage) = &r.samples.stage {
        let _ = writeln!(
            m,
            "\n## Token rewards\n\n{} records of stage `{stage}` are shown token by token in \
             report.html ([report/tokens.jsonl](report/tokens.jsonl)).",
            r.samples.items.len()
        );
        if let Some(t) = &r.samples.totals {
            let _ = writeln!(
                m,
                "All {} records: {} fixed, {} correct; {:.2} tokens blamed per fixed prediction; \
                 reward mass: blame {:.1}, credit {:.1} (blame {}% of it).",
                t.fixed + t.correct,
                t.fixed,
                t.correct,
                t.blamed_per_fixed,
                t.negative_mass,
                t.positive_mass,
                pct(t.negative_share())
            );
        }
    }
    if !r.spends.is_empty() {
        m.push_str(
            "\n## Teacher spend\n\n| stage | requests | cached | input tokens | output tokens | cost |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        let total = r.spend_total();
        let rows = r.spends.iter().map(|s| (s.stage.as_str(), &s.spend));
        for (name, s) in rows.chain([("**total**", &total)]) {
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} | {} |",
                s.requests,
                s.cached,
                s.input_tokens,
                s.output_tokens,
                cost_text(s)
            );
        }
    }
    m.push_str("\n## Stages\n\n| stage | state | time |\n|---|---|---:|\n");
    for s in &r.stages {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            s.name,
            s.state,
            s.seconds.map_or("-".into(), duration)
        );
    }
    m
}
