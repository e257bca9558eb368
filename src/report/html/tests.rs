use super::*;

#[test]
fn escapes_markup_and_quotes() {
    assert_eq!(
        escape("a<b & \"c\" 'd'>"),
        "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"
    );
}

/// A report of hostile text and broken metrics is still one well-formed page.
#[test]
fn odd_data_still_makes_a_well_formed_page() {
    use super::super::collect::{Evaluation, StageRow, StageSpend};
    use super::super::tokens::Samples;
    use crate::spend::Spend;
    let nasty = "a <b> & \"c\" 'd' \u{7} ]]> --";
    let token = |text: &str, value: f64| Token {
        text: text.into(),
        value,
        ref_logprob: Some(-1.0),
    };
    let report = Report {
        title: nasty.into(),
        dir: nasty.into(),
        script: Some(nasty.into()),
        config: vec![(nasty.into(), nasty.into())],
        stages: vec![StageRow {
            name: nasty.into(),
            state: "interrupted".into(),
            seconds: None,
        }],
        trainings: vec![Training {
            stage: "policy".into(),
            metrics: "policy/metrics.jsonl".into(),
            steps: vec![1.0, 2.0],
            columns: [("loss".to_string(), vec![f64::NAN, f64::NAN])].into(),
            state: "interrupted",
            unreadable: 1,
            last_event: 0.0,
        }],
        evaluations: vec![Evaluation {
            stage: nasty.into(),
            n: 3,
            correct: 1,
            accuracy: 1.0 / 3.0,
            low: 0.06,
            high: 0.79,
        }],
        edits: None,
        samples: Samples {
            stage: Some("rewards".into()),
            items: vec![Sample {
                index: 0,
                question: nasty.into(),
                solution: nasty.into(),
                fixed: true,
                prediction: vec![token(nasty, -0.1), token("⟨eos⟩", f64::NAN)],
                fix: vec![token(nasty, 1.0)],
            }],
            note: Some(nasty.into()),
            totals: None,
        },
        spends: vec![
            StageSpend {
                stage: nasty.into(),
                spend: Spend {
                    requests: 3,
                    cached: 2,
                    input_tokens: 1200,
                    output_tokens: 300,
                    cost: Some(0.0081),
                },
            },
            StageSpend {
                stage: "unpriced".into(),
                spend: Spend {
                    requests: 1,
                    ..Spend::NONE
                },
            },
        ],
    };
    let html = page(&report);
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(&html, options).expect("well-formed");
    assert!(
        html.contains("not drawn"),
        "the all-NaN loss is a note, not a lost page"
    );
    assert!(html.contains("1 unreadable line(s) skipped"));
    assert!(html.contains(
        "<tr id=\"spend-total\"><td><b>total</b></td><td class=\"num\">4</td>\
         <td class=\"num\">2</td><td class=\"num\">1200</td><td class=\"num\">300</td>\
         <td class=\"num\">$0.0081</td></tr>"
    ));
    assert!(html.contains("<b>interrupted</b>"));
}

#[test]
fn reward_colours_by_sign_and_size() {
    assert!(reward_style(-0.1).contains("220,38,38,0.90"));
    assert!(reward_style(-0.01).contains("220,38,38,0.18"));
    assert!(reward_style(0.5).contains("22,163,74,0.90"));
    assert_eq!(reward_style(0.0), "");
}
