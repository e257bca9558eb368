//! Makes `target/*/rlmec` and every test binary find libtorch without `LD_LIBRARY_PATH`,
//! and links the CUDA half of libtorch when `make setup TORCH=cuda` installed it.
//!
//! torch-sys adds an rpath only to its own C++ shim, which never reaches the final binary,
//! and rustc links `--as-needed`, which drops `libtorch_cuda.so` because no Rust symbol
//! refers to it (tch-rs issues #907, #980).
//!
//! It also compiles `src/model/onednn/shim.cpp`, the few lines of C++ that reach libtorch's
//! oneDNN operators tch does not bind (see `src/model/onednn/mod.rs`), and lists the
//! `stdlib/` modules for the binary to embed (see `src/script/stdlib.rs`).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = env::var_os("LIBTORCH")
        .map(PathBuf::from)
        .unwrap_or_default();
    // The shim needs libtorch's headers, wherever torch-sys finds its libraries.
    assert!(
        !libtorch.as_os_str().is_empty(),
        "LIBTORCH is not set: run `make setup` (it assembles .deps/libtorch, which \
         .cargo/config.toml names), or point LIBTORCH at a libtorch 2.13"
    );
    let read = |name: &str| {
        let path = libtorch.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    let version = read("build-version");
    let variant = read("variant");
    println!("cargo:rustc-env=RLMEC_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=RLMEC_LIBTORCH_VARIANT={variant}");
    compile_onednn_shim(&libtorch);
    embed_stdlib();

    // -rpath for the binary, the library's test harness, examples and benches alike.
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,{}",
        libtorch.join("lib").display()
    );

    if variant == "cuda" {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Against libtorch's headers, with the C++ ABI torch-sys builds its own shim with.
fn compile_onednn_shim(libtorch: &std::path::Path) {
    let shim = "src/model/onednn/shim.cpp";
    println!("cargo:rerun-if-changed={shim}");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file(shim)
        .include(libtorch.join("include"))
        .flag("-std=c++20")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        // libtorch's headers warn by the hundred under -Wall; none of it is ours.
        .warnings(false)
        .compile("rlmec_onednn");
}

/// `$OUT_DIR/stdlib.rs`: every `stdlib/*.rhai` as `(name, include_str!(file))`, sorted, so
/// the binary carries the procedure wherever it is installed.
fn embed_stdlib() {
    println!("cargo:rerun-if-changed=stdlib");
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("stdlib");
    let mut modules: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .expect("the stdlib/ folder")
        .map(|e| e.expect("a stdlib/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .map(|p| {
            let name = p
                .file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            (name, p)
        })
        .collect();
    modules.sort();
    let entries: String = modules
        .iter()
        .map(|(name, path)| {
            format!(
                "    ({name:?}, include_str!({:?})),\n",
                path.display().to_string()
            )
        })
        .collect();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("stdlib.rs");
    fs::write(
        out,
        format!("pub static MODULES: &[(&str, &str)] = &[\n{entries}];\n"),
    )
    .expect("writing $OUT_DIR/stdlib.rs");
}
