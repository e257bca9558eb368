# rlmec — the two commands a new user needs:
#   make demo    set up (first time only), build, run scripts/qa_full.rhai on the embedded default
#   make test    set up (first time only), build, run the whole test suite
#
# `make setup TORCH=cuda` installs the full CUDA libtorch instead of the lean CPU one; it
# sticks: later targets (build, test, demo, ...) keep the installed variant unless given
# TORCH=... again, and `make setup TORCH=cpu` switches back.

PYTHON   ?= python3
LIBTORCH := .deps/libtorch
# The variant a complete install recorded (tools/setup_deps.py writes $(LIBTORCH)/variant
# inside the folder it renames into place), cpu when none is installed.
ifeq ($(origin TORCH),undefined)
TORCH    := $(or $(filter cpu cuda,$(shell cat $(LIBTORCH)/variant 2>/dev/null)),cpu)
endif
MODEL    := data/models/SmolLM2-135M-Instruct.Q4_1.gguf
STAMP    := $(LIBTORCH)/.ready-$(TORCH)
RLMEC    := target/release/rlmec
# Tests drive the release binary; one torch thread each (two OpenMP threads lose to one on a busy core).
TEST_ENV := RLMEC_TORCH_THREADS=1

.PHONY: setup llama-setup demo reproduce-math test build check docs report-screenshot bench bench-train bench-lora bench-lora-scale bench-align bench-engine bench-setup clean-deps

setup: $(STAMP) $(MODEL)

# The stamp is written inside the folder before it is renamed into place, so it exists only
# for a complete install; switching TORCH replaces the folder and forces torch-sys to rebuild.
$(STAMP):
	$(PYTHON) tools/setup_deps.py libtorch --variant $(TORCH) --dest $(LIBTORCH)
	cargo clean --release -p torch-sys >/dev/null 2>&1 || true
	cargo clean -p torch-sys >/dev/null 2>&1 || true

$(MODEL):
	$(PYTHON) tools/setup_deps.py model --dest data/models

build: setup
	cargo build --release

demo: build
	$(RLMEC) scripts/qa_full.rhai

# RLMEC, SFT and RFT on the synthetic arithmetic task, from a policy trained from scratch.
reproduce-math: build
	$(RLMEC) scripts/math_full.rhai

test: build llama-setup
	$(TEST_ENV) cargo test --release

# A real llama.cpp server (llama-cpp-python's OpenAI-compatible one) for the tests that
# check rlmec against another engine: docs/engines.md. PyPI has only its sdist, so pip
# compiles llama.cpp (14 min wall on 2 AMD EPYC Zen 4 cores; cmake and ninja come from PyPI
# as wheels).
# The flags make a portable x86-64 AVX2 build: a GGML_NATIVE=ON (-march=native) build
# segfaulted on its first evaluation on a Xeon with AMX; GGML_CPU_ALL_VARIANTS would build
# CPU backends this package neither installs nor loads; LLAVA_BUILD (multimodal) is not
# needed. --no-cache-dir: pip would reuse a wheel it cached from other flags. The venv is
# made where it stays (a moved venv's scripts keep the old path in their shebangs), so a
# half-built one, without the stamp written last, is removed and built again.
LLAMA_VENV  := .deps/llama-venv
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
               -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF

llama-setup: $(LLAMA_VENV)/.ready

$(LLAMA_VENV)/.ready:
	rm -rf $(LLAMA_VENV)
	$(PYTHON) -m venv $(LLAMA_VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(LLAMA_VENV)/bin/python -m pip install --quiet \
		--disable-pip-version-check --no-cache-dir 'llama-cpp-python[server]==0.3.36'
	touch $@

# What CI also checks: formatting, lints, and that docs/api.md matches `rlmec api`.
check: setup
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

docs: build
	$(RLMEC) api > docs/api.md

# A run's report as a browser renders it: make report-screenshot RUN=runs/x writes
# runs/x/report.png (needs Debian's `chromium`; the report itself needs nothing).
RUN ?= $(firstword $(shell ls -td runs/*/report.html runs/*/*/report.html 2>/dev/null))
report-screenshot: build
	@test -n "$(RUN)" || { echo "no run to show: make report-screenshot RUN=runs/x"; exit 1; }
	$(RLMEC) report $(patsubst %/report.html,%,$(RUN)) > /dev/null
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,6000 \
		--screenshot=$(abspath $(patsubst %/report.html,%,$(RUN)))/report.png \
		file://$(abspath $(patsubst %/report.html,%,$(RUN)))/report.html

# Benchmarks against transformers (same model, inputs and threads, one run): see benches/.
BENCH_VENV := .deps/bench-venv

bench-setup: $(BENCH_VENV)/.ready

# Made where it stays (a moved venv's scripts keep the old path in their shebangs); a venv
# without its stamp is half-built and made again.
$(BENCH_VENV)/.ready:
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 transformers gguf accelerate peft
	touch $(BENCH_VENV)/.ready

bench: setup bench-setup
	RLMEC_BENCH_PYTHON=$(BENCH_VENV)/bin/python cargo bench --bench model

bench-train: setup bench-setup
	RLMEC_BENCH_PYTHON=$(BENCH_VENV)/bin/python cargo bench --bench train

# A LoRA step with gradient checkpointing on a SmolLM2-1.7B-shaped llama (bf16, no peer).
bench-lora-scale: setup
	cargo bench --bench lora_scale

# A LoRA step (r 16, all seven projections) beside transformers + PEFT.
bench-lora: setup bench-setup
	RLMEC_BENCH_LORA=16 RLMEC_BENCH_PYTHON=$(BENCH_VENV)/bin/python cargo bench --bench train

bench-align: setup bench-setup
	RLMEC_BENCH_PYTHON=$(BENCH_VENV)/bin/python cargo bench --bench align

# Sampling through llama.cpp's server by rlmec's remote engine, by the server's own kind of
# client (the same requests, Python's standard library) and natively: the seam's overhead.
bench-engine: setup llama-setup
	RLMEC_BENCH_PYTHON=$(LLAMA_VENV)/bin/python cargo bench --bench engine

clean-deps:
	rm -rf .deps data/models
