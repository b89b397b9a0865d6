#!/usr/bin/env bash
# Builds the libFuzzer target for the .npy/.npz readers (fuzz/npy_fuzz.cpp + src/io/npy.cpp) with
# clang and ASan + UBSan, then fuzzes it briefly from the seeds in fuzz/corpus/.
#
#   scripts/fuzz-npy.sh [SECONDS]      (default 20; or FUZZ_SECONDS)
#   BUILD_DIR=build/fuzz               where the binary and the growing corpus go
#
# Exits non-zero when the build fails or the fuzzer finds a crash (the input is saved in BUILD_DIR).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-${FUZZ_SECONDS:-20}}
out=${BUILD_DIR:-$root/build/fuzz}
mkdir -p "$out/corpus"

# clang with libFuzzer (Debian: clang + libclang-rt-14-dev); installed only when missing.
probe() {
  command -v clang++ >/dev/null 2>&1 &&
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' |
      clang++ -x c++ -fsanitize=fuzzer - -o "$out/probe" >/dev/null 2>&1
}
if ! probe; then
  echo "fuzz-npy: installing clang and libclang-rt-14-dev" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang libclang-rt-14-dev
  probe || { echo "fuzz-npy: clang cannot build libFuzzer targets" >&2; exit 1; }
fi
rm -f "$out/probe"

zlib_flags=()
if [ -f /usr/include/zlib.h ]; then zlib_flags=(-DCONVKIT_HAVE_ZLIB=1 -lz); fi

echo "fuzz-npy: building $out/npy_fuzz" >&2
clang++ -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Wpedantic -Wshadow -Werror \
  -I"$root/include" -I"$root/src" \
  "$root/fuzz/npy_fuzz.cpp" "$root/src/io/npy.cpp" "$root/src/io/atomic_file.cpp" "${zlib_flags[@]}" \
  -o "$out/npy_fuzz"

echo "fuzz-npy: fuzzing for ${seconds}s" >&2
cd "$out"
# The first corpus directory collects new inputs; fuzz/corpus holds the numpy-written seeds.
./npy_fuzz -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -malloc_limit_mb=256 -print_final_stats=1 -dict="$root/fuzz/npy.dict" \
  -artifact_prefix="$out/" corpus "$root/fuzz/corpus"
