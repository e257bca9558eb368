//! `rlmec report A B`: two runs side by side (e.g. RLMEC and an ablation) — the config
//! knobs that differ, the accuracy of every evaluation both or either ran, the final loss
//! of each training stage and the stage timings.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use super::collect::RunData;
use super::html::escape;
use super::{ReportError, Written, flatten, pct, write_text};
use crate::run::status::duration;

/// One row: a label and the two runs' values as text (`-` where a run has none).
type Row = (String, String, String);

/// Rows for every key either map has, in key order, keeping only those that differ when
/// `only_differences`.
fn side_by_side(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
    only_differences: bool,
) -> Vec<Row> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let get = |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or("-".into());
            (k.clone(), get(a), get(b))
        })
        .filter(|(_, x, y)| !only_differences || x != y)
        .collect()
}

struct Side {
    name: String,
    path: String,
    config: BTreeMap<String, String>,
    accuracy: BTreeMap<String, String>,
    losses: BTreeMap<String, String>,
    times: BTreeMap<String, String>,
}

impl Side {
    fn read(dir: &Path) -> Result<Self, ReportError> {
        let run = RunData::read(dir)?;
        let accuracy = run
            .evaluations()
            .iter()
            .map(|e| {
                let text = format!("{}% {} n={}", pct(e.accuracy), e.ci_text(), e.n);
                (e.stage.clone(), text)
            })
            .collect();
        let losses = run
            .trainings()
            .iter()
            .filter_map(|t| {
                let last = t.columns.get("loss")?.last()?;
                Some((
                    t.stage.clone(),
                    format!("{last:.4} ({} steps)", t.steps.len()),
                ))
            })
            .collect();
        let times = run
            .stage_rows()
            .into_iter()
            .map(|s| (s.name, s.seconds.map_or(s.state.to_string(), duration)))
            .collect();
        Ok(Self {
            // Two runs of the same name (runs/x and other/x) are told apart by path.
            name: run.name(),
            path: dir.display().to_string(),
            config: run
                .config
                .as_ref()
                .map(flatten)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            accuracy,
            losses,
            times,
        })
    }
}

/// Compare the runs in `a` and `b`; writes `compare-<a>-vs-<b>.html` and `.md` into `out`.
pub fn compare(a: &Path, b: &Path, out: &Path) -> Result<Written, ReportError> {
    let (mut a, mut b) = (Side::read(a)?, Side::read(b)?);
    let stem = format!("compare-{}-vs-{}", a.name, b.name);
    if a.name == b.name {
        (a.name, b.name) = (a.path.clone(), b.path.clone());
    }
    let sections = [
        (
            "Config: the knobs that differ",
            side_by_side(&a.config, &b.config, true),
        ),
        ("Accuracy", side_by_side(&a.accuracy, &b.accuracy, false)),
        (
            "Final training loss",
            side_by_side(&a.losses, &b.losses, false),
        ),
        ("Stage times", side_by_side(&a.times, &b.times, false)),
    ];
    let mut md = format!("# {} vs {}\n", a.name, b.name);
    let mut html = format!(
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n\
         <meta charset=\"utf-8\"/>\n<title>{a} vs {b}</title>\n<style>body {{ font: 14px/1.45 \
         system-ui, sans-serif; margin: 2em auto; max-width: 1100px; }} td, th {{ padding: 2px \
         10px; border-bottom: 1px solid #eee; text-align: left; }} table {{ border-collapse: \
         collapse; }}</style>\n</head>\n<body>\n<h1>{a} vs {b}</h1>\n",
        a = escape(&a.name),
        b = escape(&b.name)
    );
    for (title, rows) in &sections {
        let _ = write!(md, "\n## {title}\n\n");
        let _ = writeln!(html, "<h2>{}</h2>", escape(title));
        if rows.is_empty() {
            md.push_str("(none)\n");
            html.push_str("<p>(none)</p>\n");
            continue;
        }
        let _ = writeln!(md, "| | {} | {} |\n|---|---|---|", a.name, b.name);
        let _ = writeln!(
            html,
            "<table>\n<tr><th></th><th>{}</th><th>{}</th></tr>",
            escape(&a.name),
            escape(&b.name)
        );
        // A `|` inside a cell would end it.
        let cell = |t: &str| t.replace('|', "\\|");
        for (k, x, y) in rows {
            let _ = writeln!(md, "| {} | {} | {} |", cell(k), cell(x), cell(y));
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(k),
                escape(x),
                escape(y)
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body>\n</html>\n");
    let written = Written {
        html: out.join(format!("{stem}.html")),
        markdown: out.join(format!("{stem}.md")),
        summary: md,
    };
    write_text(&written.html, &html)?;
    write_text(&written.markdown, &written.summary)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_both_sides_and_filter_equal_ones() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let a = m(&[("lr", "1"), ("seed", "0"), ("only_a", "x")]);
        let b = m(&[("lr", "1"), ("seed", "1"), ("only_b", "y")]);
        let diff = side_by_side(&a, &b, true);
        let keys: Vec<&str> = diff.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(keys, ["only_a", "only_b", "seed"]);
        assert_eq!(diff[1], ("only_b".into(), "-".into(), "y".into()));
        assert_eq!(side_by_side(&a, &b, false).len(), 4);
    }
}
