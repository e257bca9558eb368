#!/usr/bin/env bash
# Builds .gpu/pylib: PEFT and what it imports that transformers does not bring (accelerate;
# psutil, which PEFT and accelerate declare), for the GPU machine's python3, which has PyTorch and
# transformers but maybe not PEFT, and no network. benches/gpu/device_run.sh hands it to
# peer_lora.py as PEER_PYLIB, which appends it to sys.path only when `import peft` fails (so
# whatever is installed there wins). Run it after ../shared/gpu/build.sh, which rewrites .gpu/.
#
#   bash benches/gpu/make_pylib.sh [DEST]        # default .gpu/pylib; ~6 MB
#
# Wheels only, no dependencies, chosen for CPython >= PYVER (default 3.10) on manylinux x86_64:
# peft and accelerate are pure Python (accelerate 1.16 needs Python >= 3.11, so 3.10 gets 1.15);
# psutil's wheel is abi3 (cp36-abi3), one binary for every CPython 3.x.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
dest=${1:-$root/.gpu/pylib}
pyver=${PYVER:-3.10}
pkgs=${PYLIB_PACKAGES:-peft==0.21.2 accelerate==1.15.0 psutil==7.2.2}
rm -rf "$dest"
# shellcheck disable=SC2086
python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$pyver" --implementation cp --platform manylinux2014_x86_64 \
  --target "$dest" $pkgs
find "$dest" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$dest/bin"   # accelerate's console scripts, with this machine's interpreter path
ls "$dest" | grep dist-info
du -sh "$dest"
