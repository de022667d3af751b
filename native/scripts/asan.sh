#!/usr/bin/env bash
# Runs the addon's test suite against an AddressSanitizer build.
#
# The instrumented addon is built in a private staging copy (binding.gyp,
# src/, scripts/build.mjs) so the package's own build/ — which other test
# runs in the same tree load — is never replaced by a binary that needs
# libasan. The tests load the staged binary through GCS_NATIVE_DIR, and every
# node process (vitest, its forks, the children and workers the tests start)
# runs with libasan preloaded, since node itself is not instrumented.
#
# Memory errors (use after free, overflows, double free) abort the run.
# Leaks: Node deliberately leaves memory to the OS at exit, so LeakSanitizer
# reports are collected into log files and only those whose stack passes
# through this addon fail the run.
#
# Usage: native/scripts/asan.sh [vitest args...]   (default: native/test)
set -euo pipefail

native="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$native/.." && pwd)"
libasan="$(${CC:-gcc} -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
  echo "asan: libasan not found (apt-get install -y gcc)" >&2
  exit 1
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/gcs-native-asan.XXXXXX")"
logs="$stage/logs"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/scripts" "$logs"
cp "$native/binding.gyp" "$native/package.json" "$stage/"
cp -R "$native/src" "$stage/src"
cp "$native/scripts/build.mjs" "$stage/scripts/"
ln -s "$root/node_modules" "$stage/node_modules"

echo "asan: building the instrumented addon in $stage"
GCS_NATIVE_ASAN=1 node "$stage/scripts/build.mjs" --force >"$logs/build.log" 2>&1 || {
  cat "$logs/build.log" >&2
  exit 1
}
# (grep without -q: an early exit would SIGPIPE nm and trip pipefail)
nm -D "$stage/build/Release/gcs_native.node" | grep __asan_init >/dev/null || {
  echo "asan: the staged addon is not instrumented" >&2
  exit 1
}

if [ "$#" -eq 0 ]; then set -- native/test; fi

echo "asan: running vitest $* with $libasan preloaded"
cd "$root"
status=0
GCS_NATIVE_DIR="$stage" \
  LD_PRELOAD="$libasan" \
  ASAN_OPTIONS="detect_leaks=1:exitcode=0:halt_on_error=1:abort_on_error=1:log_path=$logs/asan:detect_stack_use_after_return=0:allow_user_segv_handler=1" \
  LSAN_OPTIONS="exitcode=0:max_leaks=0" \
  npx vitest run "$@" || status=$?

reports=("$logs"/asan.*)
if [ -e "${reports[0]}" ]; then
  errors="$(grep -l "ERROR: AddressSanitizer" "${reports[@]}" || true)"
  if [ -n "$errors" ]; then
    echo "asan: memory errors:" >&2
    cat $errors >&2
    exit 1
  fi
  ours="$(grep -l -E "gcs_native\.node|gcs::" "${reports[@]}" || true)"
  if [ -n "$ours" ]; then
    echo "asan: leaks through the addon:" >&2
    cat $ours >&2
    exit 1
  fi
  echo "asan: ${#reports[@]} LeakSanitizer report(s) from node itself, none through the addon"
else
  echo "asan: no sanitizer reports"
fi
if [ "$status" -ne 0 ]; then
  echo "asan: the test run failed (exit $status)" >&2
  exit "$status"
fi
echo "asan: clean"
