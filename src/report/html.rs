//! `report.html`: one self-contained page (inline CSS and SVG, no script, nothing fetched),
//! written as well-formed XHTML so any XML parser can read it back.

use std::fmt::Write;

use super::charts::{Series, bar_chart, line_chart};
use super::collect::Training;
use super::edits::EditComparison;
use super::tokens::{Sample, Token};
use super::{Report, ReportError, cost_text, pct};
use crate::run::status::duration;

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1460px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #666; } .note { color: #666; font-size: 0.92em; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
.config { columns: 2; font: 12px monospace; } .config div { break-inside: avoid; }
.sample { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; }
.text { font: 13px/1.7 monospace; white-space: pre-wrap; word-break: break-word; }
.t { border-radius: 2px; } .edit { background: #fde68a; text-decoration: underline; }
.label { font-weight: 600; color: #555; margin-top: 0.5em; }
.legend span { padding: 1px 6px; margin-right: 6px; }
";

/// Text safe inside an element or a quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML allows no other control characters, not even as references.
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() && (c as u32) < 0x20 => out.push('\u{FFFD}'),
            _ => out.push(c),
        }
    }
    out
}

/// A chart, or a note saying why it could not be drawn (the rest of the page stands).
fn chart_or_note(chart: Result<String, ReportError>) -> String {
    chart.unwrap_or_else(|e| format!("<p class=\"note\">{}</p>", escape(&e.to_string())))
}

/// The whole page.
pub(crate) fn page(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n\
         <meta charset=\"utf-8\"/>\n<title>rlmec report: {t}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<h1>{t}</h1>\n<p class=\"meta\">script {s} · <a href=\"report.md\">report.md</a> · \
         <a href=\"config.json\">config.json</a> · <a href=\"log.txt\">log.txt</a> · \
         TensorBoard: <code>tensorboard --logdir {d}/tensorboard</code></p>\n",
        t = escape(&r.title),
        d = escape(&r.dir),
        s = escape(r.script.as_deref().unwrap_or("unknown")),
    );
    accuracy(&mut h, r);
    training(&mut h, &r.trainings);
    edits(&mut h, r.edits.as_ref());
    tokens(&mut h, r);
    spend(&mut h, r);
    stages(&mut h, r);
    config(&mut h, r);
    h.push_str("</body>\n</html>\n");
    h
}

fn accuracy(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"accuracy\">Accuracy</h2>\n");
    if r.evaluations.is_empty() {
        h.push_str("<p class=\"note\">No evaluation finished in this run.</p>\n");
        return;
    }
    h.push_str(
        "<table>\n<tr><th>model (stage)</th><th class=\"num\">accuracy %</th>\
         <th class=\"num\">95% CI</th><th class=\"num\">correct</th><th class=\"num\">n</th></tr>\n",
    );
    for e in &r.evaluations {
        let _ = writeln!(
            h,
            "<tr data-stage=\"{stage}\"><td>{model} <span class=\"meta\">({stage})</span></td>\
             <td class=\"num\">{acc}</td><td class=\"num\">{ci}</td>\
             <td class=\"num\">{c}</td><td class=\"num\">{n}</td></tr>",
            stage = escape(&e.stage),
            model = escape(e.model()),
            acc = pct(e.accuracy),
            ci = e.ci_text(),
            c = e.correct,
            n = e.n,
        );
    }
    h.push_str(
        "</table>\n<p class=\"note\">95% Wilson intervals: where two overlap, the difference may \
         be noise. Data: <a href=\"report/accuracy.jsonl\">report/accuracy.jsonl</a>; each \
         evaluation's predictions are in <code>stages/eval_*.json</code>.</p>\n",
    );
}

/// The charts of one training stage: the loss and its parts, lr, gradient norm, tokens/s.
fn training_charts(t: &Training) -> Vec<String> {
    fn series<'a>(t: &Training, names: &[&'a String]) -> Vec<Series<'a>> {
        names
            .iter()
            .map(|n| Series {
                name: n,
                points: t
                    .steps
                    .iter()
                    .copied()
                    .zip(t.columns[*n].iter().copied())
                    .collect(),
            })
            .collect()
    }
    // The loss with its parts (`loss_rl`, `loss_reg`); a part equal to the loss (SFT's
    // `loss_sft`) would only hide it.
    let total = t.columns.get("loss");
    let losses: Vec<&String> = t
        .columns
        .iter()
        .filter(|(k, v)| k.starts_with("loss") && (k.as_str() == "loss" || Some(*v) != total))
        .map(|(k, _)| k)
        .collect();
    let mut charts = Vec::new();
    if !losses.is_empty() {
        charts.push(line_chart(
            &format!("{}: loss", t.stage),
            "step",
            &series(t, &losses),
        ));
    }
    for (key, title) in [
        ("lr", "learning rate"),
        ("grad_norm", "gradient norm"),
        ("tokens_per_s", "tokens/s"),
    ] {
        if let Some((name, _)) = t.columns.get_key_value(key) {
            let title = format!("{}: {title}", t.stage);
            charts.push(line_chart(&title, "step", &series(t, &[name])));
        }
    }
    charts.into_iter().map(chart_or_note).collect()
}

fn training(h: &mut String, trainings: &[Training]) {
    h.push_str("<h2 id=\"training\">Training curves</h2>\n");
    if trainings.is_empty() {
        h.push_str("<p class=\"note\">No training stage has metrics in this run.</p>\n");
    }
    for t in trainings {
        let last = |k: &str| t.columns.get(k).and_then(|c| c.last().copied());
        let state = if t.state == "done" {
            String::new()
        } else {
            format!(" · <b>{}</b> (the steps it logged)", t.state)
        };
        let unreadable = if t.unreadable > 0 {
            format!(" · {} unreadable line(s) skipped", t.unreadable)
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<h3 id=\"training-{id}\">{stage}</h3>\n<p class=\"meta\">{n} steps · last loss {loss}{state}{unreadable} · \
             data: <a href=\"{path}\">{path}</a></p>\n<div class=\"charts\">",
            id = escape(&t.stage),
            stage = escape(&t.stage),
            n = t.steps.len(),
            loss = last("loss").map_or("-".into(), |l| format!("{l:.4}")),
            path = escape(&t.metrics.display().to_string()),
        );
        for chart in training_charts(t) {
            h.push_str(&chart);
            h.push('\n');
        }
        h.push_str("</div>\n");
    }
}

/// Edit distances binned for the histogram: about ten bins from 0 to the largest.
fn distance_bins(e: &EditComparison) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let max = e
        .teacher_distances
        .iter()
        .chain(&e.grm_distances)
        .copied()
        .max()
        .unwrap_or(0);
    let width = (max / 10 + 1).max(1);
    let bins = max / width + 1;
    let count = |d: &[usize]| {
        let mut c = vec![0.0; bins];
        for &x in d {
            c[x / width] += 1.0;
        }
        c
    };
    let labels = (0..bins)
        .map(|b| {
            if width == 1 {
                b.to_string()
            } else {
                format!("{}-{}", b * width, b * width + width - 1)
            }
        })
        .collect();
    (labels, count(&e.teacher_distances), count(&e.grm_distances))
}

fn edits(h: &mut String, e: Option<&EditComparison>) {
    h.push_str("<h2 id=\"grm-vs-teacher\">The GRM beside the teacher</h2>\n");
    let Some(e) = e else {
        h.push_str(
            "<p class=\"note\">This run has no <code>teacher_edits</code> and \
             <code>grm_edits</code> stages to compare.</p>\n",
        );
        return;
    };
    let median = EditComparison::median_text;
    let _ = writeln!(
        h,
        "<table>\n<tr><th></th><th class=\"num\">teacher</th><th class=\"num\">GRM</th></tr>\n\
         <tr id=\"edits-records\"><td>records judged</td><td class=\"num\">{tr}</td><td class=\"num\">{gr}</td></tr>\n\
         <tr id=\"edits-fixed\"><td>wrong predictions turned into a correct fix</td><td class=\"num\">{tf}</td><td class=\"num\">{gf}</td></tr>\n\
         <tr id=\"edits-distance\"><td>median edit distance of a fix ({unit})</td><td class=\"num\">{tm}</td><td class=\"num\">{gm}</td></tr>\n\
         {arith}</table>\n<p id=\"edits-same\">Same first wrong step as the teacher: <b>{same}</b> of <b>{cmp}</b> \
         teacher-fixed predictions ({share}).</p>",
        tr = e.teacher_records,
        gr = e.grm_records,
        tf = e.teacher_fixed,
        gf = e.grm_fixed,
        unit = e.unit,
        tm = median(&e.teacher_distances),
        gm = median(&e.grm_distances),
        same = e.same_first_error,
        cmp = e.compared,
        share = e
            .same_share()
            .map_or("-".into(), |s| format!("{}%", pct(s))),
        arith = e.wrong_arithmetic.map_or(String::new(), |(t, g)| format!(
            "<tr id=\"edits-arith\"><td>…of which the arithmetic is still wrong (right answer, \
             wrong calculation on the way)</td><td class=\"num\">{t}</td><td class=\"num\">{g}</td></tr>\n"
        )),
    );
    if !e.teacher_distances.is_empty() || !e.grm_distances.is_empty() {
        let (labels, teacher, grm) = distance_bins(e);
        h.push_str(&chart_or_note(bar_chart(
            "edit distance of correct fixes",
            &format!("{} changed", e.unit),
            &labels,
            &[("teacher", teacher), ("GRM", grm)],
        )));
        h.push('\n');
    }
    h.push_str(
        "<p class=\"note\">Data: <a href=\"report/edits.jsonl\">report/edits.jsonl</a> (one row \
         per GRM record), <code>stages/teacher_edits.json</code>, \
         <code>stages/grm_edits.json</code>.</p>\n",
    );
}

/// A token's background: red for a negative reward, green for a positive one, stronger
/// with size (full at RLMEC's clip bounds, −0.1 and 0.5).
fn reward_style(r: f64) -> String {
    if r < 0.0 {
        format!(
            "background:rgba(220,38,38,{:.2})",
            0.1 + 0.8 * (-r / 0.1).min(1.0)
        )
    } else if r > 0.0 {
        format!(
            "background:rgba(22,163,74,{:.2})",
            0.1 + 0.8 * (r / 0.5).min(1.0)
        )
    } else {
        String::new()
    }
}

fn prediction_tokens(ts: &[Token]) -> String {
    let mut out = String::new();
    for (i, t) in ts.iter().enumerate() {
        let lp = t
            .ref_logprob
            .map_or(String::new(), |lp| format!(" · ref log p {lp:.3}"));
        let _ = write!(
            out,
            "<span class=\"t\" style=\"{}\" title=\"token {i} · reward {:.4}{lp}\" data-reward=\"{}\">{}</span>",
            reward_style(t.value),
            t.value,
            t.value,
            escape(&t.text)
        );
    }
    out
}

fn fix_tokens(ts: &[Token]) -> String {
    let mut out = String::new();
    for (i, t) in ts.iter().enumerate() {
        let (class, why) = if t.value >= 1.0 {
            ("t edit", " (changed by the minimum edit)")
        } else {
            ("t", "")
        };
        let _ = write!(
            out,
            "<span class=\"{class}\" title=\"token {i} · imitation weight {}{why}\">{}</span>",
            t.value,
            escape(&t.text)
        );
    }
    out
}

fn sample(h: &mut String, s: &Sample) {
    let _ = writeln!(
        h,
        "<div class=\"sample\" data-index=\"{i}\" data-fixed=\"{f}\">\n\
         <div class=\"label\">#{i} · {kind} · problem</div><div class=\"text problem\">{q}</div>\n\
         <div class=\"label\">prediction, tokens coloured by reward</div><div class=\"text prediction\">{p}</div>\n\
         <div class=\"label\">{fix_label}</div><div class=\"text fix\">{fix}</div>\n\
         <div class=\"label\">gold solution</div><div class=\"text gold\">{gold}</div>\n</div>",
        i = s.index,
        f = s.fixed,
        kind = if s.fixed {
            "wrong, fixed"
        } else {
            "correct, kept"
        },
        q = escape(&s.question),
        p = prediction_tokens(&s.prediction),
        fix_label = if s.fixed {
            "the fix (imitation target), minimum-edit tokens marked"
        } else {
            "imitation target (the prediction itself)"
        },
        fix = fix_tokens(&s.fix),
        gold = escape(&s.solution),
    );
}

fn tokens(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"tokens\">Token rewards</h2>\n");
    let s = &r.samples;
    if let Some(stage) = &s.stage {
        let _ = writeln!(
            h,
            "<p class=\"legend\"><span style=\"{}\">−0.1</span><span style=\"{}\">−0.02</span>\
             <span>0</span><span style=\"{}\">+0.1</span><span style=\"{}\">+0.5</span>\
             <span class=\"edit\">changed by the minimum edit</span> Hover a token for its \
             reward and the reference policy's log-probability. Records of stage \
             <code>{}</code>; data: <a href=\"report/tokens.jsonl\">report/tokens.jsonl</a>.</p>",
            reward_style(-0.1),
            reward_style(-0.02),
            reward_style(0.1),
            reward_style(0.5),
            escape(stage),
        );
    }
    if let Some(t) = &s.totals {
        let _ = writeln!(
            h,
            "<p id=\"reward-totals\">All {n} records: {f} wrong and fixed, {c} correct. \
             Tokens blamed per fixed prediction: <b>{b:.2}</b>. Reward mass: blame {neg:.1}, \
             credit {pos:.1} — the blame is <b>{share}%</b> of it (RLMEC clips a wrong \
             prediction's rewards to [−0.1, 0] and a correct one's to [0, 0.5]).</p>",
            n = t.fixed + t.correct,
            f = t.fixed,
            c = t.correct,
            b = t.blamed_per_fixed,
            neg = t.negative_mass,
            pos = t.positive_mass,
            share = pct(t.negative_share()),
        );
    }
    if let Some(note) = &s.note {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", escape(note));
    }
    for item in &s.items {
        sample(h, item);
    }
}

/// What the stages that asked an HTTP teacher spent, and the total; nothing when none did.
fn spend(h: &mut String, r: &Report) {
    if r.spends.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"spend\">Teacher spend</h2>\n<table>\n<tr><th>stage</th>\
         <th class=\"num\">requests</th><th class=\"num\">cached</th>\
         <th class=\"num\">input tokens</th><th class=\"num\">output tokens</th>\
         <th class=\"num\">cost</th></tr>\n",
    );
    let total = r.spend_total();
    let rows = r.spends.iter().map(|s| (escape(&s.stage), &s.spend));
    for (i, (name, s)) in rows.chain([("<b>total</b>".into(), &total)]).enumerate() {
        let attribute = if i < r.spends.len() {
            format!("data-spend=\"{name}\"")
        } else {
            "id=\"spend-total\"".into()
        };
        let _ = writeln!(
            h,
            "<tr {attribute}><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            s.requests,
            s.cached,
            s.input_tokens,
            s.output_tokens,
            cost_text(s),
        );
    }
    h.push_str(
        "</table>\n<p class=\"note\">Requests sent and answers taken from the teacher cache \
         instead; tokens and cost are those of the requests sent (cost from \
         <code>teacher_price</code>; - when unknown). Data: each stage's <code>spend</code> in \
         <code>stages/*.json</code>.</p>\n",
    );
}

fn stages(h: &mut String, r: &Report) {
    h.push_str(
        "<h2 id=\"stages\">Stages</h2>\n<table>\n<tr><th>stage</th><th>state</th>\
         <th class=\"num\">time</th></tr>\n",
    );
    for s in &r.stages {
        let _ = writeln!(
            h,
            "<tr data-stage=\"{n}\"><td><a href=\"stages/{n}.json\">{n}</a></td><td>{st}</td>\
             <td class=\"num\">{t}</td></tr>",
            n = escape(&s.name),
            st = s.state,
            t = s.seconds.map_or("-".into(), duration),
        );
    }
    let total: f64 = r.stages.iter().filter_map(|s| s.seconds).sum();
    let _ = writeln!(
        h,
        "<tr><td><b>total</b></td><td></td><td class=\"num\"><b>{}</b></td></tr>\n</table>",
        duration(total)
    );
}

fn config(h: &mut String, r: &Report) {
    h.push_str("<h2 id=\"config\">Config</h2>\n");
    if r.config.is_empty() {
        h.push_str("<p class=\"note\">No config.json in this run.</p>\n");
        return;
    }
    h.push_str("<div class=\"config\">\n");
    for (k, v) in &r.config {
        let _ = writeln!(h, "<div>{} = {}</div>", escape(k), escape(v));
    }
    h.push_str("</div>\n");
}

#[cfg(test)]
mod tests;
