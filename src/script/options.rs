//! A native's options map (`#{max_new_tokens: 24, ...}`) read into its domain's option
//! structs ([`crate::options`]): the values serde can read go through it, with errors that
//! name the native and the option; script-only values (a closure, a model) are taken by
//! hand. An unknown key (a typo) is an error listing the known ones.

use std::collections::BTreeSet;

use rhai::{Dynamic, EvalAltResult, Map};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::json::to_json;
use super::overrides::edit_distance;

type Res<T> = Result<T, Box<EvalAltResult>>;

pub struct Options<'a> {
    what: &'a str,
    map: Map,
    known: BTreeSet<String>,
}

impl<'a> Options<'a> {
    /// `what` names the call in errors (e.g. `generate`).
    pub fn new(what: &'a str, map: Map) -> Self {
        Self {
            what,
            map,
            known: BTreeSet::new(),
        }
    }

    /// A value serde cannot read (a closure, a tensor); `None` when absent or `()`.
    pub fn take_dynamic(&mut self, key: &str) -> Option<Dynamic> {
        self.known.insert(key.to_string());
        self.map.get(key).cloned().filter(|v| !v.is_unit())
    }

    /// The options `T` has, over `T::default()`.
    pub fn parse<T: Serialize + DeserializeOwned + Default>(&mut self) -> Res<T> {
        self.parse_over(T::default())
    }

    /// The options `T` has, over `defaults` (defaults that depend on another argument, such
    /// as the task kind); a `()` value keeps the default.
    pub fn parse_over<T: Serialize + DeserializeOwned>(&mut self, defaults: T) -> Res<T> {
        let mut given = serde_json::Map::new();
        for name in crate::options::names(&defaults) {
            if let Some(v) = self.map.get(name.as_str()).filter(|v| !v.is_unit()) {
                let value = to_json(v, &format!("{}: option `{name}`", self.what))?;
                given.insert(name.clone(), value);
            }
            self.known.insert(name);
        }
        crate::options::apply(&defaults, given).map_err(|e| format!("{}: {e}", self.what).into())
    }

    /// Every key given must have been read; an unknown one gets a "did you mean" hint.
    pub fn finish(self) -> Res<()> {
        let hint = |key: &str| {
            self.known
                .iter()
                .map(|k| (edit_distance(k, key), k))
                .min()
                .filter(|(d, _)| *d <= 2)
                .map_or(key.to_string(), |(_, k)| {
                    format!("{key} (did you mean `{k}`?)")
                })
        };
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.known.contains(k.as_str()))
            .map(|k| hint(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
        Err(format!(
            "{}: unknown option(s) {}; known: {}",
            self.what,
            unknown.join(", "),
            known.join(", ")
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadOptions;
    use crate::rewards::RewardOptions;
    use crate::tasks::TaskKind;

    fn options(script_map: &str) -> Options<'static> {
        let map: Map = rhai::Engine::new().eval(script_map).unwrap();
        Options::new("token_rewards", map)
    }

    #[test]
    fn given_values_replace_defaults_and_unit_keeps_them() {
        let mut o = options("#{clip_wrong: [-0.5, 0], clip_correct: (), per_problem: 0}");
        let opts = o.parse_over(RewardOptions::paper(TaskKind::Qa)).unwrap();
        assert_eq!(opts.clip_wrong, (-0.5, 0.0));
        assert_eq!(opts.clip_correct, (0.0, 0.5));
        assert_eq!(opts.correct_per_problem, None);
        assert!(o.finish().is_ok());
    }

    #[test]
    fn a_bad_value_names_the_call_and_the_option() {
        let mut o = options("#{clip_wrong: [\"a\", 0.0]}");
        let e = o
            .parse_over(RewardOptions::paper(TaskKind::Qa))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("token_rewards: option `clip_wrong`: invalid type"),
            "{e}"
        );
        let mut o = options("#{dtype: \"f16\"}");
        let e = o.parse::<LoadOptions>().unwrap_err().to_string();
        assert!(
            e.contains("token_rewards: option `dtype`: unknown dtype `f16`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_listed_with_every_known_one() {
        let mut o = options("#{dtyp: \"bf16\", objective: 1}");
        o.take_dynamic("objective");
        o.parse::<LoadOptions>().unwrap();
        let e = o.finish().unwrap_err().to_string();
        assert!(
            e.contains(
                "token_rewards: unknown option(s) dtyp (did you mean `dtype`?); \
                 known: device, dtype, objective, pack"
            ),
            "{e}"
        );
    }
}
