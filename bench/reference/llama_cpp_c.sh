#!/bin/bash
# Builds bench/reference/llama_cpp_c.cpp against the llama.cpp that ragtune links (the newest
# static build of llama-cpp-sys-2 under TARGET_DIR/release, which `cargo build --release` or
# `cargo bench` leaves there) and runs it with the given arguments:
#   bench/reference/llama_cpp_c.sh MODEL PROMPT_FILE THREADS DECODE REPEATS
# The binary is cached beside the libraries it was linked with and rebuilt when they change.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$(ls -td "$target"/release/build/llama-cpp-sys-2-*/out 2>/dev/null | head -1)
[ -n "$out" ] && [ -f "$out/lib/libllama.a" ] \
    || { echo "no llama-cpp-sys-2 build under $target/release: run cargo build --release first" >&2; exit 1; }
bin=$out/llama_cpp_c
src=$root/bench/reference/llama_cpp_c.cpp
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$out/lib/libllama.a" -nt "$bin" ]; then
    # The flags ragtune's C and C++ get (.cargo/config.toml); the program's own loop is trivial.
    flags=(-O2 -march=native)
    [ "$(uname -m)" = x86_64 ] && flags+=(-mno-avx512fp16)
    g++ -std=c++17 "${flags[@]}" -I"$out/include" "$src" -o "$bin.tmp" \
        "$out/lib/libllama.a" "$out/lib/libggml.a" "$out/lib/libggml-cpu.a" \
        "$out/lib/libggml-base.a" -fopenmp -lpthread -ldl -lm
    mv "$bin.tmp" "$bin"
fi
exec "$bin" "$@"
