//! The one engine builder: every domain's natives, the module resolver, and `print`/`debug`
//! routed through `tracing`.

use rhai::{Engine, Module};

use super::{
    ScriptContext, align, config, generate, io, model, progress, resolver, rewards, run, serve,
    tasks, teacher, tensor, torch, train,
};
use crate::logging::PRINT_TARGET;

/// A domain's natives: its `#[export_module]` plus what a plugin module cannot declare
/// (iterators). `rlmec api` documents each domain as one section.
pub struct Domain {
    pub name: &'static str,
    pub module: fn() -> Module,
    pub extra: fn(&mut Engine),
}

/// Every domain, in the order `rlmec api` lists them.
pub const DOMAINS: &[Domain] = &[
    config::DOMAIN,
    io::DOMAIN,
    progress::DOMAIN,
    torch::DOMAIN,
    model::DOMAIN,
    generate::DOMAIN,
    serve::DOMAIN,
    tensor::DOMAIN,
    train::DOMAIN,
    align::DOMAIN,
    tasks::DOMAIN,
    teacher::DOMAIN,
    rewards::DOMAIN,
    run::DOMAIN,
];

impl Domain {
    /// Register this domain's natives as global functions.
    pub fn register(&self, engine: &mut Engine) {
        engine.register_global_module((self.module)().into());
        (self.extra)(engine);
    }
}

/// An engine with the standard Rhai packages, every domain and the rlmec module resolver.
pub fn build_engine(ctx: ScriptContext) -> Engine {
    let mut engine = Engine::new();
    for domain in DOMAINS {
        domain.register(&mut engine);
    }
    engine.set_module_resolver(resolver::ScriptResolver::default());
    engine.set_default_tag(rhai::Dynamic::from(ctx));
    // Research scripts nest deeper than Rhai's defaults for embedded use allow.
    engine.set_max_expr_depths(256, 256);
    engine.set_max_call_levels(256);
    engine.on_print(|text| tracing::info!(target: PRINT_TARGET, "{text}"));
    engine.on_debug(|text, source, pos| {
        let file = source.unwrap_or("<script>");
        match (pos.line(), pos.position()) {
            (Some(line), Some(col)) => tracing::debug!("{file}:{line}:{col}: {text}"),
            _ => tracing::debug!("{file}: {text}"),
        }
    });
    engine
}
