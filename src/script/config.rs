//! Config natives: how a script sees `--set key=value`, `--device`, `--seed` and `--out`.

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "config",
    module: || exported_module!(config_api),
    extra: |_| {},
};

/// A script's knobs: its defaults, overridden from the command line.
///
/// `--set key=value` values are Rhai literals where they parse (`42`, `2e-5`, `true`,
/// `[1, 2]`, `"text"`), else strings; `--device` and `--seed` are the same as
/// `--set device=…` and `--set seed=…`. The resolved config is saved as the run
/// directory's `config.json`. Dotted keys reach nested maps
/// (`--set rl.lr=1e-6`).
#[export_module]
pub mod config_api {
    use rhai::Map;

    use crate::script::ScriptContext;
    use crate::script::json::to_json;
    use crate::script::overrides;

    /// The script's defaults with the command line's overrides applied; remembered as the
    /// run's config (`config.json` in the run directory).
    ///
    /// Every override must name a key of `defaults` (an unknown key is an error with a
    /// "did you mean" hint) and fit its type: an integer default takes only integers, a
    /// float default takes integers and floats, a string default takes any text, an array
    /// default also takes `a,b,c`, a `()` default takes anything.
    ///
    /// ```rhai
    /// let cfg = apply_overrides(#{ n_train: 8, lr: 5e-6, teacher: "reference" });
    /// // `rlmec script.rhai --set n_train=100` gives cfg.n_train == 100
    /// print(cfg.n_train);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn apply_overrides(
        ctx: NativeCallContext,
        defaults: Map,
    ) -> Result<Map, Box<EvalAltResult>> {
        let sc = ScriptContext::of(&ctx)?;
        let config = overrides::merge(&defaults, sc.overrides()).map_err(|e| e.to_string())?;
        let json = to_json(
            &Dynamic::from_map(config.clone()),
            "apply_overrides: the config",
        )?;
        sc.set_config(json)
            .map_err(|e| format!("apply_overrides: {e}"))?;
        Ok(config)
    }

    /// The raw overrides from the command line, as a map from (dotted) key to value, for
    /// scripts that resolve their config themselves.
    ///
    /// ```rhai
    /// let o = config_overrides();
    /// if "seed" in o { print(`seed from the command line: ${o.seed}`); }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn config_overrides(ctx: NativeCallContext) -> Result<Map, Box<EvalAltResult>> {
        let sc = ScriptContext::of(&ctx)?;
        Ok(sc
            .overrides()
            .iter()
            .map(|o| (o.key.as_str().into(), o.value.clone()))
            .collect())
    }
}
