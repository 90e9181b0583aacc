#!/usr/bin/env bash
# Runs the model under rocmProfileData's tracer (runTracer.sh), which writes trace.rpd in the
# working dir; with rpd2tracing.py available the trace is also converted to trace.json (Perfetto).
set -u
tracer=$(command -v runTracer.sh || true)
for candidate in /rocmProfileData/rpd_tracer/runTracer.sh ./rocmProfileData/rpd_tracer/runTracer.sh; do
  [ -z "$tracer" ] && [ -x "$candidate" ] && tracer=$candidate
done
if [ -z "$tracer" ]; then
  echo "pytest-madengine tools: rpd needs rocmProfileData's runTracer.sh in the image (PATH or" \
       "/rocmProfileData/rpd_tracer); build it in the Dockerfile (github.com/ROCm/rocmProfileData)" >&2
  exit 127
fi
[ "${1:-}" = "--" ] && shift
"$tracer" "$@"
status=$?
converter=$(command -v rpd2tracing.py || true)
[ -z "$converter" ] && [ -f "$(dirname "$tracer")/../tools/rpd2tracing.py" ] && converter="$(dirname "$tracer")/../tools/rpd2tracing.py"
if [ -f trace.rpd ] && [ -n "$converter" ]; then
  python3 "$converter" trace.rpd trace.json || echo "pytest-madengine tools: rpd2tracing.py could not convert trace.rpd" >&2
fi
exit $status
