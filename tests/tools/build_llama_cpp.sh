#!/usr/bin/env bash
# Builds llama.cpp's command-line tools (llama-quantize, llama-imatrix, llama-perplexity,
# llama-bench) from the llama.cpp that PyPI's llama-cpp-python sdist vendors: the same version
# (ggml 0.25.3) the golden vectors and the Python bindings come from. Used by the benchmark
# scripts (not by the tests). Idempotent; prints the bin directory on stdout.
#   usage: tests/tools/build_llama_cpp.sh [TARGET...]
set -euo pipefail
CACHE="${QUANTMIX_CACHE:-$HOME/.cache/quantmix}"
VER="0.3.36"
VENV="$CACHE/venv"
ROOT="$CACHE/llama.cpp"
SRC="$ROOT/src/llama_cpp_python-$VER/vendor/llama.cpp"
BUILD="$ROOT/build"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(llama-quantize llama-imatrix llama-perplexity llama-bench)
[ -x "$VENV/bin/python" ] || { echo "run .ci/setup first (needs $VENV)" >&2; exit 1; }
if [ ! -d "$SRC" ]; then
  mkdir -p "$ROOT/src"
  # Only llama-cpp-python itself as source: `--no-binary :all:` would also build the sdist's
  # build requirements (cmake, ninja) from source just to read its metadata.
  "$VENV/bin/pip" download -q --no-deps --no-binary llama-cpp-python -d "$ROOT/src" "llama-cpp-python==$VER" >&2
  tar -xzf "$ROOT/src/llama_cpp_python-$VER.tar.gz" -C "$ROOT/src"
fi
"$VENV/bin/python" -c "import cmake" 2>/dev/null || "$VENV/bin/pip" install -q cmake >&2
CMAKE="$("$VENV/bin/python" -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "cmake"))')"
# Native (what users run), but without AMX where the CPU reports it and the machine cannot run
# it: in a VM whose hypervisor does not enable the AMX tile state (this Firecracker VM's Xeon
# lists amx_int8/amx_tile), ggml's AMX matmul dies of a general protection fault at the first
# tile load (llama-bench and llama-imatrix segfault in ggml_backend_amx_mul_mat). `-mno-amx-*`
# leaves everything else -march=native enables (AVX-512 F/BW/VNNI/BF16, repacked GEMM).
NOAMX=""
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null && ! "$(dirname "$0")/amx_usable.sh"; then
  NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
# Configured every time (cheap, idempotent): a change of NOAMX reaches an existing build.
"$CMAKE" -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=OFF \
  -DCMAKE_C_FLAGS="$NOAMX" -DCMAKE_CXX_FLAGS="$NOAMX" >&2
"$CMAKE" --build "$BUILD" -j "${JOBS:-2}" --target "${targets[@]}" >&2
echo "$BUILD/bin"
