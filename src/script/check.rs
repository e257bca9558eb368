//! `rlmec check`: compile scripts without running them and report, as `file:line:col:
//! message`, syntax errors and calls to functions that exist nowhere — not among the
//! natives, not in Rhai's standard library, not in the script, not in the module the call's
//! namespace imports. Imported modules are checked too.
//!
//! Rhai is dynamically typed, so a method call `x.f(a)` passes when any `f` takes two
//! arguments (the receiver counts); what `check` promises is that every name called exists
//! with that number of arguments.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rhai::{AST, ASTNode, Engine, Expr, FnCallExpr, OptimizationLevel, Position, Stmt};

use super::api::callable_functions;
use super::overrides::edit_distance;
use super::{ScriptContext, build_engine, resolver};

/// Functions the evaluator implements itself rather than registering.
const KEYWORD_FUNCTIONS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
    "eval",
];

/// One problem found in a script.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Check every file (and the modules they import); the diagnostics in file order.
pub fn check_files(paths: &[PathBuf]) -> Vec<Diagnostic> {
    let mut checker = Checker::new();
    for path in paths {
        checker.check_file(path);
    }
    checker.diagnostics
}

/// Name → every arity it can be called with.
type Arities = HashMap<String, BTreeSet<usize>>;

struct Checker {
    engine: Engine,
    natives: Arities,
    checked: HashSet<PathBuf>,
    diagnostics: Vec<Diagnostic>,
}

impl Checker {
    fn new() -> Self {
        let mut engine = build_engine(ScriptContext::default());
        // Keep the AST as written: no folding that could hide a call.
        engine.set_optimization_level(OptimizationLevel::None);
        let mut natives = Arities::new();
        for f in callable_functions(&engine) {
            natives.entry(f.name).or_default().insert(f.num_params);
        }
        for k in KEYWORD_FUNCTIONS {
            natives.entry(k.to_string()).or_default().extend(0..=16);
        }
        Self {
            engine,
            natives,
            checked: HashSet::new(),
            diagnostics: Vec::new(),
        }
    }

    fn report(&mut self, file: &Path, pos: Position, message: String) {
        self.diagnostics.push(Diagnostic {
            file: file.to_path_buf(),
            line: pos.line().unwrap_or(0),
            col: pos.position().unwrap_or(0),
            message,
        });
    }

    fn compile(&mut self, path: &Path) -> Option<AST> {
        let source = match resolver::read_module(path) {
            Ok(s) => s,
            Err(e) => {
                self.report(path, Position::NONE, format!("cannot read: {e}"));
                return None;
            }
        };
        match self.engine.compile(&source) {
            Ok(ast) => Some(ast),
            Err(e) => {
                self.report(path, e.position(), e.err_type().to_string());
                None
            }
        }
    }

    fn check_file(&mut self, path: &Path) -> Option<Arities> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let first_visit = self.checked.insert(key);
        let ast = self.compile(path)?;
        if first_visit {
            // What a plain call in this file can reach: the natives and its own functions.
            let mut visible = self.natives.clone();
            for (name, arities) in script_functions(&ast, false) {
                visible.entry(name).or_default().extend(arities);
            }
            self.check_calls(path, &ast, &visible);
        }
        Some(script_functions(&ast, true))
    }

    fn check_calls(&mut self, path: &Path, ast: &AST, visible: &Arities) {
        let (calls, imports, variables) = collect(ast);
        let mut modules: HashMap<String, Option<Arities>> = HashMap::new();
        for (module, alias, pos) in imports {
            let exports = match resolver::import_file(&module, path) {
                Some(file) => self.check_file(&file),
                None => {
                    self.report(
                        path,
                        pos,
                        format!("cannot find module `{module}` (looked beside the script and in the stdlib)"),
                    );
                    None
                }
            };
            modules.insert(alias, exports);
        }
        for call in calls {
            let known = match &call.namespace {
                None => unknown_call(&call, visible, &variables),
                Some(ns) => match modules.get(ns) {
                    Some(Some(exports)) => unknown_in(exports, &call, &format!("module `{ns}`")),
                    // The module failed to load (already reported) or is nested: no verdict.
                    Some(None) | None if ns.contains("::") || modules.contains_key(ns) => None,
                    _ => Some(format!("`{ns}` is not an imported module")),
                },
            };
            if let Some(message) = known {
                self.report(path, call.pos, message);
            }
        }
    }
}

/// A plain (un-namespaced) call checked against what the file can reach.
fn unknown_call(call: &Call, visible: &Arities, variables: &HashSet<String>) -> Option<String> {
    let problem = unknown_in(
        visible,
        call,
        "natives, Rhai's standard library or this script",
    )?;
    // Rhai does not call a function pointer held in a variable by the variable's name.
    if !call.method && !visible.contains_key(&call.name) && variables.contains(&call.name) {
        return Some(format!(
            "`{0}` is a variable, not a function; call the function it holds with `{0}.call(...)`",
            call.name
        ));
    }
    Some(problem)
}

/// `None` when `call` names a function of `known` with its arity, else why not.
fn unknown_in(known: &Arities, call: &Call, place: &str) -> Option<String> {
    let args = call.args;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match known.get(&call.name) {
        Some(arities) if arities.contains(&args) => None,
        Some(arities) => {
            let takes: Vec<_> = arities.iter().map(|a| a.to_string()).collect();
            Some(format!(
                "`{}` is called with {args} argument{}{} but takes {}",
                call.name,
                plural(args),
                if call.method {
                    " (counting the receiver)"
                } else {
                    ""
                },
                takes.join(" or ")
            ))
        }
        None => {
            let hint = known
                .keys()
                .map(|k| (edit_distance(k, &call.name), k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            Some(format!(
                "unknown function `{}` (not in {place}){hint}",
                call.name
            ))
        }
    }
}

/// A call site: `namespace::name(args)` or `receiver.name(args)`.
struct Call {
    name: String,
    namespace: Option<String>,
    /// Arguments including the receiver of a method call.
    args: usize,
    method: bool,
    pos: Position,
}

impl Call {
    fn new(f: &FnCallExpr, pos: Position, method: bool) -> Option<Self> {
        let is_ident = f
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        if f.is_operator_call() || !is_ident {
            return None;
        }
        Some(Self {
            name: f.name.to_string(),
            namespace: (!f.namespace.is_empty()).then(|| f.namespace.to_string()),
            args: f.args.len() + usize::from(method),
            method,
            pos,
        })
    }
}

/// `import "path" as alias`: the path, the alias and where.
type Import = (String, String, Position);

/// The calls, the imports and every variable or parameter name.
fn collect(ast: &AST) -> (Vec<Call>, Vec<Import>, HashSet<String>) {
    let mut calls = Vec::new();
    let mut imports = Vec::new();
    let mut variables: HashSet<String> = ast
        .iter_functions()
        .flat_map(|f| f.params.into_iter().map(str::to_string))
        .collect();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(f, pos))) => calls.extend(Call::new(f, *pos, false)),
            Some(ASTNode::Expr(Expr::MethodCall(f, pos))) => calls.extend(Call::new(f, *pos, true)),
            Some(ASTNode::Stmt(Stmt::Import(x, pos))) => {
                if let Expr::StringConstant(module, _) = &x.0 {
                    imports.push((module.to_string(), x.1.name.to_string(), *pos));
                }
            }
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => {
                variables.insert(x.0.name.to_string());
            }
            Some(ASTNode::Stmt(Stmt::For(x, ..))) => {
                variables.insert(x.0.name.to_string());
                if let Some(counter) = &x.1 {
                    variables.insert(counter.name.to_string());
                }
            }
            _ => {}
        }
        true
    });
    (calls, imports, variables)
}

/// The functions a script defines; with `public_only`, those an importer can call.
fn script_functions(ast: &AST, public_only: bool) -> Arities {
    let mut out = Arities::new();
    for f in ast.iter_functions() {
        if public_only && f.access == rhai::FnAccess::Private {
            continue;
        }
        out.entry(f.name.to_string())
            .or_default()
            .insert(f.params.len());
    }
    out
}
