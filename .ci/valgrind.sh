#!/usr/bin/env bash
# Valgrind memcheck over the release smoke example (examples/valgrind_smoke.rs):
# spawns, joins, kills, times out and panics greenlets, ends hub scopes with
# greenlets still blocked (on this thread and on another one), and checks the
# hub counters. (A stack overflow aborts the process by design; it is tested
# in tests/soundness_overflow.rs, not here.)
#
# Miri cannot switch stacks, so this is the memory check of the runtime.
# Memcheck warns "client switching stacks?" at the first few switches: that is
# expected (greenlet stacks are separate mmap'd regions) and not an error.
# Any error or definite/possible leak not listed in .ci/valgrind.supp fails the
# run (exit 1). Takes a few seconds once the example is built.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --example valgrind_smoke
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
exe="$target_dir/release/examples/valgrind_smoke"

# --max-stackframe: a switch between the thread's stack and a greenlet's
# (256 KiB by default, up to a few MiB with `stack_size`) looks to memcheck
# like a huge frame; below this bound it is treated as one instead of as
# an unknown stack, which otherwise gives false reports on non-main threads.
valgrind \
  --max-stackframe=8388608 \
  --error-exitcode=1 \
  --leak-check=full \
  --show-leak-kinds=definite,possible \
  --errors-for-leak-kinds=definite,possible \
  --track-origins=yes \
  --gen-suppressions=all \
  --suppressions=.ci/valgrind.supp \
  "$exe"
