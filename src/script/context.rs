//! What a running script knows about its invocation: the `--set` overrides (with
//! `--device`, `--seed` and `--out` folded in) and whether the script has read them.
//!
//! The context rides in the engine's default tag so natives reach it through their
//! `NativeCallContext` and several engines (tests) never share state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{EvalAltResult, NativeCallContext};

use super::overrides::Override;

#[derive(Clone, Default)]
pub struct ScriptContext {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    overrides: Vec<Override>,
    overrides_read: AtomicBool,
}

impl ScriptContext {
    pub fn new(overrides: Vec<Override>) -> Self {
        Self {
            inner: Arc::new(Inner {
                overrides,
                overrides_read: AtomicBool::new(false),
            }),
        }
    }

    /// The overrides in command-line order; reading them marks them as used.
    pub fn overrides(&self) -> &[Override] {
        self.inner.overrides_read.store(true, Ordering::Relaxed);
        &self.inner.overrides
    }

    /// Overrides were given but the script never looked at them: worth a warning, since a
    /// researcher would otherwise believe their `--set` took effect.
    pub fn unread_overrides(&self) -> Option<&[Override]> {
        let read = self.inner.overrides_read.load(Ordering::Relaxed);
        (!read && !self.inner.overrides.is_empty()).then_some(&self.inner.overrides[..])
    }

    /// The context of the engine running the calling native function.
    pub fn of(ctx: &NativeCallContext) -> Result<Self, Box<EvalAltResult>> {
        ctx.tag()
            .and_then(|tag| tag.clone().try_cast::<Self>())
            .ok_or_else(|| "internal error: the engine was built without a script context".into())
    }
}
