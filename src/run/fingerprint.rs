//! Fingerprints: what a stage's result depends on, as one hash and input by input.

use serde_json::Value;

/// SHA-256 (hex) of a value's compact JSON form.
pub fn fingerprint(value: &Value) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of each top-level input of a stage (for a map of inputs), so a rerun can
/// say *which* input changed.
pub fn input_parts(inputs: &Value) -> serde_json::Map<String, Value> {
    match inputs {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(fingerprint(v))))
            .collect(),
        _ => serde_json::Map::new(),
    }
}

/// The inputs whose fingerprints differ between two [`input_parts`] (added or removed
/// ones included), for the log line of a stage that runs again.
pub fn changed_parts(
    before: &serde_json::Map<String, Value>,
    now: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != now.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changed_parts_name_the_inputs_that_differ() {
        let before = input_parts(&json!({"lr": 0.1, "seed": 1}));
        let now = input_parts(&json!({"lr": 0.2, "seed": 1, "epochs": 1}));
        assert_eq!(changed_parts(&before, &now), ["epochs", "lr"]);
        assert_eq!(fingerprint(&json!(1)).len(), 64);
    }
}
