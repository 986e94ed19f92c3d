#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). CI calls it from .ci/run on a fresh
# machine, so it installs what it needs itself. Today the suite is unprivileged (front end,
# reference evaluator, CLI); kernel and netns tests join it with the runtime and testbed
# issues, and with NFCC_REQUIRE_KERNEL=1 a skipped privileged test becomes a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install the Rust toolchain (rustup) first" >&2
    exit 2
fi
# rustfmt and clippy ship with rustup's default profile; add them if this toolchain lacks them.
for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$comp"
    fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
# insta fails on a snapshot mismatch instead of writing a new one when CI is set.
CI="${CI:-true}" cargo test --workspace --quiet 2>&1 | tee target/test-output.txt
echo "== nfcc on the examples (release build)"
cargo build --release --quiet -p nfcc
./target/release/nfcc check examples/*.nf
./target/release/nfcc test examples/*.nf
