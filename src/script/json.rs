//! Script values as JSON: what every record file, stage input and result, fingerprint,
//! config and options map goes through. JSON has no NaN or infinity and serde_json writes
//! them as `null`, which would turn a diverged loss into "unset" and an option into its
//! default; a closure, a model, a tensor or a run it writes as a name (`anon$…`,
//! `rlmec::script::…`), which would become an option's value or a file's name. Each is an
//! error naming where in the value it is.

use rhai::{Dynamic, EvalAltResult};
use serde_json::Value;

/// `value` as JSON; `what` names the call (and the value) in errors.
pub fn to_json(value: &Dynamic, what: &str) -> Result<Value, Box<EvalAltResult>> {
    if let Some((at, Problem(subject, predicate))) = not_data(value) {
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        return Err(format!("{what}: {subject}{at} {predicate}").into());
    }
    serde_json::to_value(value)
        .map_err(|e| format!("{what}: not representable as JSON: {e}").into())
}

/// A script value from JSON.
pub fn from_json(value: &Value) -> Result<Dynamic, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(value)
}

/// What a value is and what is wrong with it: `NaN`, `is not a finite number`.
struct Problem(String, &'static str);

/// The first NaN, infinity or value that is not data in `value`: its path (`reward[3]`,
/// `[0].lora.alpha`) and what is wrong with it.
fn not_data(value: &Dynamic) -> Option<(String, Problem)> {
    // `inner` is the path below `step`: an index joins it directly, a key after a dot.
    let join = |step: String, (inner, problem): (String, Problem)| {
        let dot = if inner.is_empty() || inner.starts_with('[') {
            ""
        } else {
            "."
        };
        (format!("{step}{dot}{inner}"), problem)
    };
    if let Ok(x) = value.as_float() {
        let problem = Problem(
            x.to_string(),
            "is not a finite number, and JSON holds no other",
        );
        return (!x.is_finite()).then_some((String::new(), problem));
    }
    if value.is_fnptr() {
        return Some((String::new(), Problem("a closure".into(), "is not data")));
    }
    let data = value.is_unit()
        || value.is_bool()
        || value.is_int()
        || value.is_char()
        || value.is_string()
        || value.is_blob()
        || value.is_array()
        || value.is_map();
    if !data {
        // A handle's Rust name (`rlmec::script::tensor::TensorHandle`) as scripts know it.
        let rust = value.type_name();
        let name = rust.rsplit("::").next().unwrap_or(rust);
        let name = name.strip_suffix("Handle").unwrap_or(name);
        return Some((String::new(), Problem(format!("a {name}"), "is not data")));
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return (items.iter().enumerate())
            .find_map(|(i, v)| not_data(v).map(|found| join(format!("[{i}]"), found)));
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return (map.iter()).find_map(|(k, v)| not_data(v).map(|found| join(k.to_string(), found)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(script: &str) -> Dynamic {
        rhai::Engine::new().eval(script).unwrap()
    }

    #[test]
    fn a_non_finite_number_or_a_closure_is_named_with_its_path() {
        let e = to_json(
            &eval("#{a: 1, b: #{c: [1.0, 0.0 / 0.0]}}"),
            "write_json: x.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("write_json: x.json: NaN at `b.c[1]` is not a finite number"),
            "{e}"
        );
        let e = to_json(&eval("[#{r: [1.0 / 0.0]}]"), "w")
            .unwrap_err()
            .to_string();
        assert!(e.contains("w: inf at `[0].r[0]`"), "{e}");
        let e = to_json(&eval("-1.0 / 0.0"), "w").unwrap_err().to_string();
        assert!(e.contains("w: -inf is not a finite number"), "{e}");
        let e = to_json(&eval("#{out: || 1}"), "train: option")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train: option: a closure at `out` is not data"),
            "{e}"
        );
        let e = to_json(&eval("[timestamp()]"), "w")
            .unwrap_err()
            .to_string();
        assert!(e.contains("w: a timestamp at `[0]` is not data"), "{e}");
    }

    #[test]
    fn finite_values_convert_as_serde_json_does() {
        let v = to_json(&eval("#{a: [1, 2.5, \"x\", ()], b: true}"), "w").unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, 2.5, "x", null], "b": true}));
        assert_eq!(
            from_json(&v).unwrap().to_string(),
            eval("#{a: [1, 2.5, \"x\", ()], b: true}").to_string()
        );
    }
}
