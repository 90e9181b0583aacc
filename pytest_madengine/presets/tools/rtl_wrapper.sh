#!/usr/bin/env bash
# Runs the model under rocm-trace-lite (the `rtl` command, else its Python package), writing
# rocm_trace_lite_output/trace.db. RTL_MODE (lite/default) is passed where the installed version knows --mode.
set -u
out="${RTL_WRAPPER_OUTPUT_DIR:-rocm_trace_lite_output}"
mkdir -p "$out"
[ "${1:-}" = "--" ] && shift
if command -v rtl >/dev/null 2>&1; then
  runner=(rtl trace)
elif python3 -c 'import rocm_trace_lite' >/dev/null 2>&1; then
  runner=(python3 -m rocm_trace_lite.cli trace)
else
  echo "pytest-madengine tools: rocm-trace-lite is not installed in this image (no 'rtl', no Python package" \
       "rocm_trace_lite); install it in the Dockerfile or drop the tool from the context" >&2
  exit 127
fi
if [ -n "${RTL_MODE:-}" ] && "${runner[@]}" --help 2>&1 | grep -q -- '--mode'; then
  exec "${runner[@]}" --mode "$RTL_MODE" -o "$out/trace.db" "$@"
fi
exec "${runner[@]}" -o "$out/trace.db" "$@"
