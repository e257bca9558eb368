//! `--set key=value`: parsing values as Rhai literals and merging them into a script's
//! default config with type checks, so a misspelt key or a value of the wrong type is an
//! error that names the `--set` it came from instead of a silently ignored knob.

use rhai::{Dynamic, Engine, Map, OptimizationLevel, Stmt};

/// One `--set key=value` (or `--device`, `--seed`, `--out`), as typed and as parsed.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted path into the config: `rl.lr` sets `cfg.rl.lr`.
    pub key: String,
    pub value: Dynamic,
    /// The argument as given, for error messages.
    pub raw: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OverrideError {
    #[error("--set {0}: expected KEY=VALUE")]
    MissingEquals(String),
    #[error("--set {0}: `{1}` is not a config key (letters, digits, `_`, dotted for nesting)")]
    BadKey(String, String),
    #[error("--set {raw}: unknown config key `{key}`{hint}; this script's keys are: {known}")]
    UnknownKey {
        raw: String,
        key: String,
        hint: String,
        known: String,
    },
    #[error("--set {raw}: `{key}` expects {expected} (default {default}), got {got}")]
    WrongType {
        raw: String,
        key: String,
        expected: String,
        default: String,
        got: String,
    },
}

impl Override {
    /// Parse `key=value`; the value is a Rhai literal where it is one, else a string.
    pub fn parse(arg: &str) -> Result<Self, OverrideError> {
        let (key, text) = arg
            .split_once('=')
            .ok_or_else(|| OverrideError::MissingEquals(arg.to_string()))?;
        let key = key.trim();
        let valid = |seg: &str| {
            seg.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !key.split('.').all(valid) {
            return Err(OverrideError::BadKey(arg.to_string(), key.to_string()));
        }
        Ok(Self {
            key: key.to_string(),
            value: parse_literal(text),
            raw: arg.to_string(),
        })
    }

    /// A built-in flag (`--device cuda`) as the override it stands for.
    pub fn flag(key: &str, value: Dynamic, text: &str) -> Self {
        Self {
            key: key.to_string(),
            value,
            raw: format!("{key}={text}"),
        }
    }
}

/// `42`, `-1.5e-3`, `true`, `[1, 2]`, `"quoted"`, `#{a: 1}` parse as Rhai values; anything
/// else (`anthropic:claude-x`, `runs/a`, `cuda`) is the string itself. Only constants count:
/// `1+2` stays the string "1+2" rather than being evaluated.
pub fn parse_literal(text: &str) -> Dynamic {
    let mut engine = Engine::new_raw();
    engine.set_optimization_level(OptimizationLevel::None);
    let as_string = || Dynamic::from(text.to_string());
    let Ok(ast) = engine.compile_expression(text) else {
        return as_string();
    };
    match ast.statements() {
        [Stmt::Expr(expr)] if expr.is_constant() => {
            expr.get_literal_value(None).unwrap_or_else(as_string)
        }
        _ => as_string(),
    }
}

/// `defaults` with every override applied, checked against the type of the default.
pub fn merge(defaults: &Map, overrides: &[Override]) -> Result<Map, OverrideError> {
    let mut config = defaults.clone();
    for ov in overrides {
        let path: Vec<&str> = ov.key.split('.').collect();
        set_path(&mut config, &path, 1, ov)?;
    }
    Ok(config)
}

/// Set `path[depth - 1..]` inside `map`; `depth` counts the segments walked so far.
fn set_path(
    map: &mut Map,
    path: &[&str],
    depth: usize,
    ov: &Override,
) -> Result<(), OverrideError> {
    let walked = path[..depth].join(".");
    let seg = path[depth - 1];
    let Some(slot) = map.get_mut(seg) else {
        return Err(unknown_key(ov, &walked, map));
    };
    if depth == path.len() {
        *slot = coerce(slot, ov)?;
        return Ok(());
    }
    let Some(mut inner) = slot.clone().try_cast::<Map>() else {
        return Err(unknown_key(ov, &ov.key, &Map::new()));
    };
    set_path(&mut inner, path, depth + 1, ov)?;
    *slot = inner.into();
    Ok(())
}

fn unknown_key(ov: &Override, key: &str, siblings: &Map) -> OverrideError {
    let last = key.rsplit('.').next().unwrap_or(key);
    let closest = siblings
        .keys()
        .map(|k| (edit_distance(k, last), k.to_string()))
        .min()
        .filter(|(d, _)| *d <= 2)
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let mut known: Vec<_> = siblings.keys().map(|k| k.to_string()).collect();
    known.sort();
    OverrideError::UnknownKey {
        raw: ov.raw.clone(),
        key: key.to_string(),
        hint: closest,
        known: if known.is_empty() {
            "(none at this level)".into()
        } else {
            known.join(", ")
        },
    }
}

/// The override as a value of the default's type, where that conversion is lossless.
fn coerce(default: &Dynamic, ov: &Override) -> Result<Dynamic, OverrideError> {
    let value = ov.value.clone();
    if default.is_unit() || default.type_name() == value.type_name() {
        return Ok(value);
    }
    if let (true, Ok(i)) = (default.is_float(), value.as_int()) {
        return Ok(Dynamic::from_float(i as rhai::FLOAT));
    }
    if default.is_string() {
        // `--set name=123` for a string knob means the text "123".
        let (_, text) = ov.raw.split_once('=').unwrap_or(("", &ov.raw));
        return Ok(Dynamic::from(text.to_string()));
    }
    if let (true, Ok(s)) = (default.is_array(), value.clone().into_string()) {
        // `--set models=a,b` for a list knob.
        let items = s.split(',').filter(|p| !p.is_empty()).map(parse_literal);
        return Ok(Dynamic::from_array(items.collect()));
    }
    Err(OverrideError::WrongType {
        raw: ov.raw.clone(),
        key: ov.key.clone(),
        expected: describe_type(default),
        default: default.to_string(),
        got: format!("{} {}", describe_type(&value), value),
    })
}

fn describe_type(v: &Dynamic) -> String {
    match v.type_name() {
        "i64" => "an integer".into(),
        "f64" => "a number".into(),
        "bool" => "true or false".into(),
        "string" => "a string".into(),
        "array" => "an array".into(),
        "map" => "a map".into(),
        other => format!("a value of type {other}"),
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(arg: &str) -> Override {
        Override::parse(arg).unwrap()
    }

    fn defaults() -> Map {
        let engine = Engine::new();
        engine
            .eval(r#"#{n: 5, lr: 1e-5, name: "x", on: true, models: [], rl: #{eps: 0.3}, any: ()}"#)
            .unwrap()
    }

    #[test]
    fn values_parse_as_rhai_literals_else_strings() {
        assert_eq!(set("n=42").value.as_int(), Ok(42));
        assert_eq!(set("n=-3").value.as_int(), Ok(-3));
        assert_eq!(set("lr=2e-5").value.as_float(), Ok(2e-5));
        assert_eq!(set("on=false").value.as_bool(), Ok(false));
        assert_eq!(set("xs=[1, 2.5]").value.into_array().unwrap().len(), 2);
        assert_eq!(set(r#"s="a b""#).value.into_string().unwrap(), "a b");
        assert_eq!(
            set("t=anthropic:claude-x").value.into_string().unwrap(),
            "anthropic:claude-x"
        );
        assert_eq!(set("e=1+2").value.into_string().unwrap(), "1+2");
        assert_eq!(set("p=runs/a").value.into_string().unwrap(), "runs/a");
        assert_eq!(set("empty=").value.into_string().unwrap(), "");
    }

    #[test]
    fn malformed_arguments_are_errors() {
        assert!(matches!(
            Override::parse("novalue"),
            Err(OverrideError::MissingEquals(_))
        ));
        assert!(matches!(
            Override::parse("=3"),
            Err(OverrideError::BadKey(..))
        ));
        assert!(matches!(
            Override::parse("a..b=3"),
            Err(OverrideError::BadKey(..))
        ));
        assert!(matches!(
            Override::parse("9x=3"),
            Err(OverrideError::BadKey(..))
        ));
    }

    #[test]
    fn merge_coerces_to_the_default_type() {
        let cfg = merge(
            &defaults(),
            &[
                set("lr=1"),
                set("name=123"),
                set("models=a,b"),
                set("rl.eps=0.2"),
                set("any=[1]"),
            ],
        )
        .unwrap();
        assert_eq!(cfg["lr"].as_float(), Ok(1.0));
        assert_eq!(cfg["name"].clone().into_string().unwrap(), "123");
        assert_eq!(cfg["models"].clone().into_array().unwrap().len(), 2);
        let rl = cfg["rl"].clone().cast::<Map>();
        assert_eq!(rl["eps"].as_float(), Ok(0.2));
        assert!(cfg["any"].is_array());
    }

    #[test]
    fn merge_rejects_unknown_keys_with_a_hint() {
        let err = merge(&defaults(), &[set("nn=3")]).unwrap_err().to_string();
        assert!(
            err.contains("unknown config key `nn` (did you mean `n`?)"),
            "{err}"
        );
        assert!(err.starts_with("--set nn=3:"), "{err}");
        let err = merge(&defaults(), &[set("rl.epz=0.1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`rl.epz`") && err.contains("did you mean `eps`"),
            "{err}"
        );
        let err = merge(&defaults(), &[set("n.x=1")]).unwrap_err().to_string();
        assert!(err.contains("unknown config key `n.x`"), "{err}");
    }

    #[test]
    fn merge_rejects_wrong_types() {
        let err = merge(&defaults(), &[set("n=abc")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "--set n=abc: `n` expects an integer (default 5), got a string abc"
        );
        assert!(merge(&defaults(), &[set("on=1")]).is_err());
        assert!(merge(&defaults(), &[set("n=1.5")]).is_err());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
