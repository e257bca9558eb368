//! The `rlmec` command line: run a Rhai script, check scripts, print the native API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Args, Parser, Subcommand};
use rlmec::device::DeviceSpec;
use rlmec::script::context::RunTarget;
use rlmec::script::overrides::Override;
use rlmec::script::{api, check, runner};

const ABOUT: &str = "Fine-grained RL for language models with minimum-edit token rewards (RLMEC).";

const LONG_ABOUT: &str = "\
rlmec runs research procedures written in Rhai over a native runtime (models, sampling,
teachers, edit-distance alignment, training). The paper's procedure lives in stdlib/ and
scripts/; change an experiment by editing or overriding a script, never by recompiling.

  rlmec scripts/qa_full.rhai                        run the QA procedure on the embedded default
  rlmec scripts/qa_full.rhai --set n_train=200      override a knob of the script's config
  rlmec scripts/qa_full.rhai --device cuda          the same on a GPU (a `make setup TORCH=cuda` build)
  rlmec scripts/qa_full.rhai --out runs/x           run in runs/x; if it exists, resume it
  rlmec scripts/variants/sft.rhai --reuse runs/x    take runs/x's stages that have the same inputs
  rlmec runs                                        the runs under runs/ and their stages
  rlmec status runs/x                               one run's stages: done, reused, running, interrupted
  rlmec report runs/x                               runs/x/report.html: curves, accuracy, token rewards
  rlmec report runs/x runs/y                        two runs side by side (configs diffed)
  rlmec check scripts/*.rhai                        syntax and unknown functions, without running
  rlmec api                                         every native function with its documentation

Logs go to stderr (RUST_LOG, -v, -q); a script's print() goes to stdout.";

#[derive(Parser)]
#[command(
    name = "rlmec",
    version = concat!(env!("CARGO_PKG_VERSION"), " (libtorch ", env!("RLMEC_LIBTORCH_VERSION"), ", ", env!("RLMEC_LIBTORCH_VARIANT"), ")"),
    about = ABOUT,
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output (-q warnings only and no progress bars, -qq also silences print()).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    quiet: u8,
    /// Load the stdlib's modules from DIR instead of the copy built into rlmec (to try an
    /// edit of the procedure without rebuilding; also $RLMEC_STDLIB).
    #[arg(long, value_name = "DIR", global = true)]
    stdlib: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Compile scripts without running them: syntax errors and calls to functions that do
    /// not exist, as file:line:col: message. Exits non-zero when anything is found.
    Check {
        #[arg(required = true, value_name = "SCRIPT")]
        scripts: Vec<PathBuf>,
    },
    /// List the run directories under DIR [default: runs] with their stages' state.
    Runs {
        #[arg(value_name = "DIR", default_value = "runs")]
        dir: PathBuf,
    },
    /// Show one run: its script, config and each stage (done with its time, running, or
    /// interrupted and waiting for a rerun with --out to resume it).
    Status {
        #[arg(value_name = "RUN_DIR")]
        dir: PathBuf,
    },
    /// Write a run's report: report.html (self-contained: curves, accuracy, the GRM beside
    /// the teacher, token rewards), report.md, report/*.jsonl and TensorBoard events. With
    /// two runs, compare them instead: configs diffed, accuracies side by side.
    Report {
        #[arg(value_name = "RUN_DIR", required = true, num_args = 1..=2)]
        runs: Vec<PathBuf>,
        /// Where the comparison of two runs is written [default: the first run].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print every native function and type with its signature and documentation.
    Api {
        /// Machine-readable JSON instead of markdown.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The Rhai script to run.
    #[arg(value_name = "SCRIPT.rhai", required = true)]
    script: Option<PathBuf>,
    /// Override a config key of the script (repeatable). VALUE is a Rhai literal where it
    /// parses (42, 2e-5, true, [1, 2], "text"), else a string; dotted keys reach nested maps.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = Override::parse)]
    set: Vec<Override>,
    /// Where tensors live: cpu, cuda, cuda:N (same as --set device=...).
    #[arg(long, value_parser = clap::value_parser!(DeviceSpec))]
    device: Option<DeviceSpec>,
    /// The run directory [default: runs/<script>-<UTC timestamp>]; the --out of an
    /// existing run resumes it: finished stages are reused, interrupted ones resume.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Take the finished stages of run OTHER whose inputs are the same instead of running
    /// them again (repeatable; the first run that has a stage wins). An ablation that
    /// changes only step 7 reruns step 7 alone. OTHER's files must stay where they are.
    #[arg(long, value_name = "OTHER")]
    reuse: Vec<PathBuf>,
    /// Seed for everything random (same as --set seed=...).
    #[arg(long)]
    seed: Option<i64>,
    /// Torch intra-op threads, 1 to 1024 [default: $RLMEC_TORCH_THREADS, else one per core].
    #[arg(long, env = "RLMEC_TORCH_THREADS",
          value_parser = clap::value_parser!(i64).range(1..=rlmec::threads::MAX_THREADS))]
    threads: Option<i64>,
}

impl RunArgs {
    /// The `--set` list with the dedicated flags folded in, flags last so they win.
    fn overrides(&self) -> Vec<Override> {
        let mut all = self.set.clone();
        if let Some(d) = self.device {
            all.push(Override::flag(
                "device",
                d.to_string().into(),
                &d.to_string(),
            ));
        }
        if let Some(seed) = self.seed {
            all.push(Override::flag("seed", seed.into(), &seed.to_string()));
        }
        all
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = cli.verbose as i8 - cli.quiet as i8;
    rlmec::logging::init(verbosity);
    if cli.quiet > 0 {
        rlmec::progress::hide_all();
    }
    if let Some(dir) = cli.stdlib {
        if !dir.is_dir() {
            eprintln!("error: --stdlib {}: not a folder", dir.display());
            return ExitCode::FAILURE;
        }
        rlmec::script::stdlib::use_folder(dir);
    }
    match cli.command {
        Some(Command::Check { scripts }) => {
            let diagnostics = check::check_files(&scripts);
            for d in &diagnostics {
                eprintln!("{d}");
            }
            if diagnostics.is_empty() {
                tracing::info!("{} script(s) ok", scripts.len());
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Command::Runs { dir }) => print_or_fail(rlmec::run::status::list(&dir)),
        Some(Command::Status { dir }) => print_or_fail(rlmec::run::status::status(&dir)),
        Some(Command::Report { runs, out }) => report(&runs, out),
        Some(Command::Api { json }) => {
            print!(
                "{}",
                if json {
                    api::api_json()
                } else {
                    api::api_markdown()
                }
            );
            ExitCode::SUCCESS
        }
        None => run(cli.run),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let Some(script) = args.script.clone() else {
        unreachable!("clap requires SCRIPT when no subcommand is given")
    };
    if let Some(n) = args.threads
        && let Err(e) = rlmec::threads::set_threads(n)
    {
        eprintln!("error: --threads: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(seed) = args.seed {
        tch::manual_seed(seed);
    }
    // A GPU this machine lacks fails now, before a run folder with an interrupted stage.
    if let Some(Err(e)) = args.device.map(DeviceSpec::to_tch) {
        eprintln!("error: --device: {e}");
        return ExitCode::FAILURE;
    }
    let target = RunTarget {
        dir: args
            .out
            .clone()
            .unwrap_or_else(|| rlmec::run::default_dir(&script)),
        script: script.clone(),
        args: std::env::args().collect(),
        reuse: args.reuse.clone(),
    };
    // A mistyped --reuse fails now, not after the script's first minutes.
    for other in &args.reuse {
        if let Err(e) = rlmec::run::RunDir::existing(other) {
            eprintln!("error: --reuse: {e}");
            return ExitCode::FAILURE;
        }
    }
    match runner::run_script(&script, args.overrides(), Some(target)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(runs: &[PathBuf], out: Option<PathBuf>) -> ExitCode {
    let written = match runs {
        [_] if out.is_some() => {
            eprintln!(
                "error: --out is where a comparison of two runs goes; one run's report is written into it"
            );
            return ExitCode::FAILURE;
        }
        [run] => rlmec::report::write(run),
        [a, b] => rlmec::report::compare(a, b, out.as_deref().unwrap_or(a)),
        _ => unreachable!("clap takes one or two runs"),
    };
    match written {
        Ok(w) => {
            print!("{}", w.summary);
            eprintln!("wrote {} and {}", w.html.display(), w.markdown.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_or_fail(text: Result<String, rlmec::run::RunDirError>) -> ExitCode {
    match text {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
