#!/usr/bin/env bash
# Runs the model under the ROCm profiler the image has: rocprofv3 (ROCm 6.2 and later), else the
# legacy rocprof. Usage: rocprof_wrapper.sh [profiler options] -- <model command...>
# Both profilers take the same option names for the traces used in the catalogue; the legacy one
# has no "--" separator, so it is dropped for it.
set -u
if command -v rocprofv3 >/dev/null 2>&1; then
  exec rocprofv3 "$@"
fi
if command -v rocprof >/dev/null 2>&1; then
  args=()
  for arg in "$@"; do
    [ "$arg" = "--" ] && continue
    args+=("$arg")
  done
  exec rocprof "${args[@]}"
fi
echo "pytest-madengine tools: neither rocprofv3 nor rocprof is installed in this image (looked on PATH);" \
     "use an image with ROCm's profiler (rocprofiler-sdk) or drop the tool from the context" >&2
exit 127
