//! Option maps read into option structs.
//!
//! A native's options arrive as a map from names to values (`#{lr: 1e-5, epochs: 2}`). Each
//! domain declares what it accepts as a struct that serde reads and writes: the field names
//! are the option names, the field types their types, and the struct's `Default` (or a
//! constructor such as `RewardOptions::paper(kind)`) their defaults, written once (the API
//! documentation shows them from there: `script/defaults.rs`). [`names`] lists the options
//! such a struct has and [`apply`] lays given values over its defaults, with errors that
//! name the option. The small enums that scripts name by a string
//! (`"cosine"`, `"paper"`, `"bf16"`) get their serde from their `FromStr` and `Display`
//! through [`serde_by_name!`](crate::serde_by_name), so the names are spelled in one place.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A time option given in seconds, as a `Duration`: a number, not negative, above 0 unless
/// `zero_ok`, and not beyond what a `Duration` holds (1e308 is refused, not a panic).
pub fn seconds(value: f64, zero_ok: bool) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| zero_ok || !d.is_zero())
        .ok_or_else(|| {
            let range = if zero_ok { "0 or more" } else { "above 0" };
            format!("must be a number of seconds, {range}, got {value:?}")
        })
}

/// The fields of `defaults` as a JSON object (flattened structs' fields included).
fn object<T: Serialize>(defaults: &T) -> Map<String, Value> {
    match serde_json::to_value(defaults) {
        Ok(Value::Object(fields)) => fields,
        other => panic!("an options struct serialises to an object, not {other:?}"),
    }
}

/// The options `defaults`' type has, sorted.
pub fn names<T: Serialize>(defaults: &T) -> Vec<String> {
    object(defaults).into_iter().map(|(name, _)| name).collect()
}

/// `defaults` with the `given` values in place of theirs; `given` holds options of
/// `defaults`' type only (see [`names`]). A number fits a float option whether or not it has
/// a fractional part. An error names the option whose value does not fit.
pub fn apply<T: Serialize + DeserializeOwned>(
    defaults: &T,
    given: Map<String, Value>,
) -> Result<T, String> {
    let base = object(defaults);
    let read = |given: &Map<String, Value>| {
        let mut all = base.clone();
        all.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        serde_json::from_value::<T>(Value::Object(all))
    };
    read(&given).map_err(|e| {
        // serde names the value that does not fit, not the option it was given for (a
        // flattened struct's values are even read after the whole map): the culprit is
        // the option that fails on its own.
        given
            .iter()
            .find_map(|(name, value)| {
                let alone = Map::from_iter([(name.clone(), value.clone())]);
                read(&alone)
                    .err()
                    .map(|e| format!("option `{name}`: {}", plain(&e.to_string())))
            })
            .unwrap_or_else(|| e.to_string())
    })
}

/// serde's message with the Rust type it expected as a script author says it.
fn plain(message: &str) -> String {
    const SAID: [(&str, &str); 5] = [
        ("expected f64", "expected a number"),
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
    ];
    SAID.iter()
        .find_map(|(rust, script)| {
            message
                .strip_suffix(rust)
                .map(|head| format!("{head}{script}"))
        })
        .unwrap_or_else(|| message.to_string())
}

/// Serde for a type that scripts name by a string: written with its `Display`, read with its
/// `FromStr` (whose error message becomes serde's).
#[macro_export]
macro_rules! serde_by_name {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        beta: f64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Outer {
        steps: usize,
        lr: f64,
        halt: Option<usize>,
        #[serde(flatten)]
        inner: Inner,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self { beta: 0.9 }
        }
    }

    impl Default for Outer {
        fn default() -> Self {
            Self {
                steps: 3,
                lr: 0.5,
                halt: None,
                inner: Inner::default(),
            }
        }
    }

    fn given(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_names_include_optional_and_flattened_fields() {
        assert_eq!(names(&Outer::default()), ["beta", "halt", "lr", "steps"]);
    }

    #[test]
    fn given_values_replace_the_defaults_and_integers_fit_floats() {
        let o = apply(
            &Outer::default(),
            given(json!({"lr": 2, "beta": 0.5, "halt": 4})),
        );
        let expected = Outer {
            steps: 3,
            lr: 2.0,
            halt: Some(4),
            inner: Inner { beta: 0.5 },
        };
        assert_eq!(o.unwrap(), expected);
        assert_eq!(
            apply(&Outer::default(), Map::new()).unwrap(),
            Outer::default()
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_option_even_when_flattened() {
        let e = apply(&Outer::default(), given(json!({"lr": 1, "steps": -1}))).unwrap_err();
        assert_eq!(
            e,
            "option `steps`: invalid value: integer `-1`, expected a non-negative integer"
        );
        let e = apply(&Outer::default(), given(json!({"steps": 1, "beta": "x"}))).unwrap_err();
        assert_eq!(
            e,
            "option `beta`: invalid type: string \"x\", expected a number"
        );
    }

    #[derive(Debug, PartialEq)]
    enum Mode {
        Fast,
    }

    impl std::fmt::Display for Mode {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fast")
        }
    }

    impl std::str::FromStr for Mode {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            match s {
                "fast" => Ok(Self::Fast),
                other => Err(format!("unknown mode `{other}`: expected fast")),
            }
        }
    }

    crate::serde_by_name!(Mode);

    #[test]
    fn a_type_named_by_a_string_reads_and_writes_its_name() {
        assert_eq!(serde_json::to_value(Mode::Fast).unwrap(), json!("fast"));
        assert_eq!(
            serde_json::from_value::<Mode>(json!("fast")).unwrap(),
            Mode::Fast
        );
        let e = serde_json::from_value::<Mode>(json!("slow")).unwrap_err();
        assert_eq!(e.to_string(), "unknown mode `slow`: expected fast");
    }
}
