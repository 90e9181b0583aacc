#!/bin/sh
# Tool therock_check (pre script): say whether the container's ROCm is a TheRock distribution.
# TheRock installs through pip (the rocm-sdk command) or tarballs; both leave share/therock/ under the
# ROCm root. Prints one line per place looked at and a verdict; never fails the run.
found=0
report() { # $1 = root, $2 = how it was found
    if [ -f "$1/share/therock/therock_manifest.json" ] || [ -f "$1/share/therock/dist_info.json" ]; then
        echo "therock_check: TheRock ROCm at $1 ($2)"
        found=$((found + 1))
    else
        echo "therock_check: $1 ($2) is not a TheRock installation"
    fi
}
if command -v rocm-sdk >/dev/null 2>&1; then
    root=$(rocm-sdk path --root 2>/dev/null) && [ -n "$root" ] && report "$root" "rocm-sdk path --root"
else
    echo "therock_check: no rocm-sdk command"
fi
for root in "${MAD_ROCM_PATH:-}" "${ROCM_PATH:-}" "${ROCM_HOME:-}" /opt/rocm /usr/local/rocm; do
    [ -n "$root" ] && [ -d "$root" ] && report "$root" "directory"
done
if [ "$found" -gt 0 ]; then
    echo "therock_check: TheRock detected ($found place(s))"
else
    echo "therock_check: no TheRock installation detected"
fi
exit 0
