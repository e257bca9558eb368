//! Where `import "name"` looks: next to the importing script first (so experiments can keep
//! their own modules beside them), then the standard library ([`super::stdlib`]: built in,
//! or a folder given with `--stdlib`), which holds the paper's procedure (`import "steps"
//! as steps;` loads `stdlib/steps.rhai`).
//!
//! Rhai's own file resolver labels a module with the import string and resolves nested
//! imports from the wrong folder; this one labels each module with its file path, so errors
//! and `debug` output point at the real file, and `rlmec check` resolves the same way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope};

use super::stdlib;

// rhai's `SharedModule` under the `sync` feature.
type SharedModule = std::sync::Arc<Module>;

/// The file an `import` of `path` from the script `importer` loads (a built-in module's
/// name for the built-in stdlib); `None` when neither candidate exists.
pub fn import_file(path: &str, importer: &Path) -> Option<PathBuf> {
    // A built-in module has no folder: its imports are the stdlib's.
    let beside = (stdlib::built_in_source(importer).is_none())
        .then(|| {
            let mut p = importer.parent().unwrap_or(Path::new("")).join(path);
            p.set_extension("rhai");
            p
        })
        .filter(|p| p.is_file());
    beside.or_else(|| stdlib::find(path))
}

/// The source of a module [`import_file`] found.
pub fn read_module(file: &Path) -> std::io::Result<String> {
    match stdlib::built_in_source(file) {
        Some(source) => Ok(source.to_string()),
        None => std::fs::read_to_string(file),
    }
}

/// `path` relative to the working directory when it lies below it (shorter errors).
fn display_path(path: &Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.as_deref().unwrap_or(path).display().to_string()
}

/// The resolver every engine uses; modules are loaded once per engine.
#[derive(Default)]
pub struct ScriptResolver {
    cache: Mutex<HashMap<PathBuf, SharedModule>>,
    /// Modules being evaluated, outermost first: an import of one of them is a cycle.
    loading: Mutex<Vec<PathBuf>>,
}

impl ModuleResolver for ScriptResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let importer = Path::new(source.unwrap_or(""));
        let file = import_file(path, importer)
            .ok_or_else(|| Box::new(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos)))?;
        let key = file.canonicalize().unwrap_or_else(|_| file.clone());
        if let Some(module) = self.lock().get(&key) {
            return Ok(module.clone());
        }
        let label = display_path(&file);
        {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = loading.iter().position(|p| *p == key) {
                let chain: Vec<String> = loading[at..]
                    .iter()
                    .chain([&key])
                    .map(|p| display_path(p))
                    .collect();
                return Err(format!(
                    "import \"{path}\": import cycle {} (a script named like a module it imports resolves to itself: rename it)",
                    chain.join(" → ")
                )
                .into());
            }
            loading.push(key.clone());
        }
        let in_module = |err| Box::new(EvalAltResult::ErrorInModule(label.clone(), err, pos));
        let source = read_module(&file).map_err(|e| format!("{label}: {e}"))?;
        let evaluated = engine
            .compile(&source)
            .map_err(Into::into)
            .and_then(|mut ast| {
                ast.set_source(label.as_str());
                Module::eval_ast_as_new(Scope::new(), &ast, engine)
            });
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != key);
        let mut module = evaluated.map_err(in_module)?;
        module.set_id(label.as_str());
        module.build_index();
        let module: SharedModule = module.into();
        self.lock().insert(key, module.clone());
        Ok(module)
    }
}

impl ScriptResolver {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, SharedModule>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
