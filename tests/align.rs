//! The `paper` alignment against the Python port of the public code
//! (`tests/fixtures/align/make_align_fixtures.py` wrote the references).

mod common;

use rlmec::align::{Mode, align};

#[test]
fn paper_mode_reproduces_the_public_code() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align/align.json");
    let cases = common::read_json(&path);
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 360);
    for (k, case) in cases.iter().enumerate() {
        let (a, b) = (common::ids(&case["a"]), common::ids(&case["b"]));
        let want: Vec<bool> = common::ids(&case["flags"])
            .iter()
            .map(|&f| f == 1)
            .collect();
        let distance = case["distance"].as_u64().unwrap() as usize;
        let paper = align(&a, &b, Mode::Paper);
        assert_eq!(paper.flags, want, "case {k}: {a:?} → {b:?}");
        assert_eq!(paper.distance, distance, "case {k}");
        let optimal = align(&a, &b, Mode::Optimal);
        assert_eq!(optimal.distance, distance, "case {k}");
        assert_eq!(optimal.flags.len(), b.len());
    }
}
