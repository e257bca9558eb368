//! Reading a native's options map (`#{max_new_tokens: 24, ...}`) with clear errors: a wrong
//! type names the field, and an unknown key (a typo) is an error listing the known ones.

use std::collections::BTreeSet;

use rhai::{Dynamic, EvalAltResult, Map};

/// A float, or an integer as a float (`2` where `2.0` was meant).
fn number(v: &Dynamic) -> Option<f64> {
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

pub struct Options<'a> {
    what: &'a str,
    map: Map,
    known: BTreeSet<&'static str>,
}

type Res<T> = Result<T, Box<EvalAltResult>>;

impl<'a> Options<'a> {
    /// `what` names the call in errors (e.g. `generate`).
    pub fn new(what: &'a str, map: Map) -> Self {
        Self {
            what,
            map,
            known: BTreeSet::new(),
        }
    }

    /// A value of any type (`None` when absent or `()`).
    pub fn take_dynamic(&mut self, key: &'static str) -> Option<Dynamic> {
        self.take(key)
    }

    fn take(&mut self, key: &'static str) -> Option<Dynamic> {
        self.known.insert(key);
        self.map.get(key).cloned().filter(|v| !v.is_unit())
    }

    fn wrong(&self, key: &str, expected: &str, got: &Dynamic) -> Box<EvalAltResult> {
        format!(
            "{}: option `{key}` must be {expected}, got {} {got}",
            self.what,
            got.type_name()
        )
        .into()
    }

    /// A map (or any value) read into `T` through serde: a missing field takes `T`'s default, an
    /// unknown or mistyped one is an error naming the option and the field.
    pub fn serde<T: serde::de::DeserializeOwned>(&mut self, key: &'static str) -> Res<Option<T>> {
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        let json: serde_json::Value = rhai::serde::from_dynamic(&v)
            .map_err(|e| format!("{}: option `{key}`: {e}", self.what))?;
        serde_json::from_value(json)
            .map(Some)
            .map_err(|e| format!("{}: option `{key}`: {e}", self.what).into())
    }

    pub fn int(&mut self, key: &'static str, default: i64) -> Res<i64> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v.as_int().map_err(|_| self.wrong(key, "an integer", &v)),
        }
    }

    /// A non-negative count.
    pub fn count(&mut self, key: &'static str, default: usize) -> Res<usize> {
        let n = self.int(key, default as i64)?;
        usize::try_from(n)
            .map_err(|_| format!("{}: option `{key}` must be >= 0, got {n}", self.what).into())
    }

    pub fn float(&mut self, key: &'static str, default: f64) -> Res<f64> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => number(&v).ok_or_else(|| self.wrong(key, "a number", &v)),
        }
    }

    pub fn bool(&mut self, key: &'static str, default: bool) -> Res<bool> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .map_err(|_| self.wrong(key, "true or false", &v)),
        }
    }

    /// A range `[lo, hi]` of two numbers with `lo <= hi`.
    pub fn range(&mut self, key: &'static str, default: (f64, f64)) -> Res<(f64, f64)> {
        let Some(v) = self.take(key) else {
            return Ok(default);
        };
        let expected = "a range [lo, hi] of two numbers, lo <= hi";
        match v.clone().into_array().ok().as_deref() {
            Some([lo, hi]) => match (number(lo), number(hi)) {
                (Some(lo), Some(hi)) if lo <= hi => Ok((lo, hi)),
                _ => Err(self.wrong(key, expected, &v)),
            },
            _ => Err(self.wrong(key, expected, &v)),
        }
    }

    /// A count that may be absent.
    pub fn optional_count(&mut self, key: &'static str) -> Res<Option<usize>> {
        if self.map.get(key).is_none_or(Dynamic::is_unit) {
            self.known.insert(key);
            return Ok(None);
        }
        self.count(key, 0).map(Some)
    }

    pub fn string(&mut self, key: &'static str, default: &str) -> Res<String> {
        match self.take(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .clone()
                .into_string()
                .map_err(|_| self.wrong(key, "a string", &v)),
        }
    }

    pub fn strings(&mut self, key: &'static str) -> Res<Vec<String>> {
        let Some(v) = self.take(key) else {
            return Ok(Vec::new());
        };
        let items = v
            .clone()
            .into_array()
            .map_err(|_| self.wrong(key, "an array of strings", &v))?;
        items
            .into_iter()
            .map(|s| {
                s.clone()
                    .into_string()
                    .map_err(|_| self.wrong(key, "an array of strings", &s))
            })
            .collect()
    }

    /// Every key given must have been read.
    pub fn finish(self) -> Res<()> {
        let unknown: Vec<&str> = self
            .map
            .keys()
            .map(|k| k.as_str())
            .filter(|k| !self.known.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<&str> = self.known.iter().copied().collect();
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

    fn options(script_map: &str) -> Options<'static> {
        let map: Map = rhai::Engine::new().eval(script_map).unwrap();
        Options::new("token_rewards", map)
    }

    #[test]
    fn a_range_is_two_ordered_numbers_and_anything_else_names_the_field() {
        let mut o = options("#{clip_wrong: [-0.5, 0], clip_correct: ()}");
        assert_eq!(o.range("clip_wrong", (-0.1, 0.0)).unwrap(), (-0.5, 0.0));
        assert_eq!(o.range("clip_correct", (0.0, 0.5)).unwrap(), (0.0, 0.5));
        assert!(o.finish().is_ok());
        for bad in ["[0.5, 0.0]", "[-0.5]", "[\"a\", 0.0]", "-0.5"] {
            let mut o = options(&format!("#{{clip_wrong: {bad}}}"));
            let e = o.range("clip_wrong", (-0.1, 0.0)).unwrap_err().to_string();
            assert!(
                e.contains("token_rewards: option `clip_wrong` must be a range [lo, hi]"),
                "{bad}: {e}"
            );
        }
    }
}
