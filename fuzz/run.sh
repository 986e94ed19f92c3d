#!/usr/bin/env bash
# Runs a fuzz target for a while: `bash fuzz/run.sh parse_check 300`. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets the stable toolchain accept the sanitizer
# flags cargo-fuzz passes. The parse_check corpus is seeded with every .nf file of the repo.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-parse_check}
seconds=${2:-300}
mkdir -p "corpus/$target"
if [ "$target" = parse_check ]; then
    cp ../dsl/tests/in/*/*.nf ../examples/*.nf ../dsl/tests/regressions/* "corpus/$target/"
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds"
