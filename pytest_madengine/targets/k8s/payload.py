"""What reaches the pod besides its image: the model dir as a ConfigMap, and the pod's entry script.

The channel: the model dir prepared on the controller (``workload.steps``: the card's scripts,
the clone of its ``url``, pre/post scripts) plus the package's ``scripts/common`` go into one
gzip'd tar in the ConfigMap's ``binaryData`` (``payload.tgz``); the pod's entry script
(``POD_SCRIPT``, fixed text) unpacks it into an ``emptyDir`` at ``/myworkspace``, so the model
sees madengine's layout (``workload.layout``), takes its node rank from the Indexed Job's
completion index, runs the step command given as its arguments, and prints the
``multiple_results`` CSV between two marker lines at the end of its log (read back by the
target, cut from the saved log). The files named in ``CARRY_VAR`` (model-dir-relative names or
globs: the system environment capture's dir, the tools' ``outputs``) follow as a base64'd gzip'd
tar between two more marker lines, when the image has ``base64`` and they are at most
``CARRY_LIMIT`` bytes compressed (a pod log is no file transfer; over that, the log says what stayed
in the pod). A ConfigMap holds at most 1 MiB: a bigger payload is a
``MadError`` naming the dir.
"""
from __future__ import annotations

import base64
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import MadError
from ...workload.layout import MODEL_DIR, MODEL_DIR_NAME, WORKSPACE

PAYLOAD_KEY = "payload.tgz"
PAYLOAD_MOUNT = "/mad-payload"
CONFIGMAP_LIMIT = 1024 * 1024 - 16 * 1024  # the API's 1 MiB per object, less room for metadata
RESULTS_MARK_VAR = "MAD_K8S_RESULTS_MARK"
CARRY_VAR = "MAD_K8S_CARRY"
CARRY_LIMIT = 4 * 1024 * 1024  # bytes of gzip'd tar; the kubelet rotates a container log at 10 MiB
EXIT_SETUP = 97  # the entry script's own failure (no tar, bad index): not the model's exit code

# $1.. = the step command (workload.steps). Values are never evaluated as shell code: the eval
# builds a variable *name* from the completion index (checked to be a number) and a per-rank
# variable name (checked to be a name); the value is only expanded, never parsed.
POD_SCRIPT = rf'''mad_fail() {{ echo "[pytest-madengine] $1" >&2; exit {EXIT_SETUP}; }}
mkdir -p {WORKSPACE} || mad_fail "cannot create {WORKSPACE} (is the image's root read-only?)"
gzip -dc {PAYLOAD_MOUNT}/{PAYLOAD_KEY} | tar -xf - -C {WORKSPACE} \
  || mad_fail "cannot unpack the model dir: the image needs gzip and tar"
NODE_RANK=${{JOB_COMPLETION_INDEX:-0}}
case "$NODE_RANK" in ''|*[!0-9]*) mad_fail "job completion index '$NODE_RANK' is not a number";; esac
export NODE_RANK
for mad_name in ${{MAD_PER_RANK_VARS:-}}; do
  case "$mad_name" in [!A-Z_]*|*[!A-Z0-9_]*) mad_fail "per-rank variable '$mad_name' is not a name";; esac
  eval "export $mad_name=\"\${{MAD_RANK_${{NODE_RANK}}_$mad_name:-}}\""
done
cd {MODEL_DIR} || mad_fail "{MODEL_DIR} is missing from the payload"
"$@" &
mad_child=$!
trap 'kill -TERM "$mad_child" 2>/dev/null' TERM INT
wait "$mad_child"; mad_rc=$?
while kill -0 "$mad_child" 2>/dev/null; do wait "$mad_child"; mad_rc=$?; done
if [ -n "${{MAD_OUTPUT_CSV:-}}" ] && [ -f "$MAD_OUTPUT_CSV" ]; then
  echo "${{{RESULTS_MARK_VAR}}} begin"; cat "$MAD_OUTPUT_CSV"; echo; echo "${{{RESULTS_MARK_VAR}}} end"
fi
set --
for mad_f in ${{{CARRY_VAR}:-}}; do [ -e "$mad_f" ] && set -- "$@" "$mad_f"; done
if [ $# -gt 0 ]; then
  mad_tgz={WORKSPACE}/.mad-carry.tgz
  if ! command -v base64 >/dev/null 2>&1; then
    echo "[pytest-madengine] not sent back (the image has no base64): $*" >&2
  elif tar -cf - "$@" | gzip -c > "$mad_tgz" && [ "$(wc -c < "$mad_tgz")" -le {CARRY_LIMIT} ]; then
    echo "${{{RESULTS_MARK_VAR}}} files begin"; base64 "$mad_tgz"; echo "${{{RESULTS_MARK_VAR}}} files end"
  else
    echo "[pytest-madengine] not sent back (packing failed, or over {CARRY_LIMIT // 1024} KiB compressed: more than a pod log carries): $*" >&2
  fi
fi
exit "$mad_rc"
'''


def build_payload(model_dir: Path, package_root: Path, *, where: str) -> bytes:
    """The gzip'd tar of ``run_directory/`` (the model dir) and ``scripts/common/`` of the package."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        tar.add(model_dir, arcname=MODEL_DIR_NAME)
        common = package_root / "scripts" / "common"
        if common.is_dir():
            tar.add(common, arcname="scripts/common")
    data = buffer.getvalue()
    if len(data) > CONFIGMAP_LIMIT:
        raise MadError(
            f"the model dir and scripts/common are {len(data) / 1024:.0f} KiB compressed, over the "
            f"{CONFIGMAP_LIMIT // 1024} KiB a Kubernetes ConfigMap can carry", where=where,
            fix="move large files (weights, data sets) into the image or a data provider / k8s.data_pvc, "
                "and keep the scripts dir small")
    return data


@dataclass
class ResultsFilter:
    """Cuts the results block (``<mark> begin`` .. ``<mark> end``) and the files block (``<mark> files
    begin`` .. ``<mark> files end``) out of a pod's log lines."""

    mark: str
    csv_lines: list[str] = field(default_factory=list)
    file_lines: list[str] = field(default_factory=list)  # base64 of the gzip'd tar
    block: str = ""  # "", "csv" or "files": the block being read
    found: bool = False
    files_found: bool = False

    def keep(self, line: str) -> bool:
        """Whether ``line`` belongs to the model's log (False for the blocks and their markers)."""
        stripped = line.rstrip("\r\n")
        if stripped == f"{self.mark} begin":
            self.block, self.found, self.csv_lines = "csv", True, []
        elif stripped == f"{self.mark} files begin":
            self.block, self.file_lines = "files", []
        elif stripped in (f"{self.mark} end", f"{self.mark} files end") and self.block:
            self.files_found = self.files_found or self.block == "files"
            self.block = ""
        elif self.block:
            (self.csv_lines if self.block == "csv" else self.file_lines).append(stripped)
        else:
            return True
        return False

    @property
    def csv_text(self) -> str:
        lines = list(self.csv_lines)
        while lines and not lines[-1].strip():
            lines.pop()  # the entry script's own newline after cat
        return "\n".join(lines) + "\n" if lines else ""

    def unpack_files(self, dest: Path, *, where: str) -> None:
        """Extract the files block into ``dest`` (paths as in the pod's model dir; nothing outside ``dest``)."""
        try:
            data = base64.b64decode("".join(self.file_lines), validate=True)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(dest, filter="data")
        except (ValueError, OSError, tarfile.TarError) as exc:
            raise MadError(f"the files sent back in the pod log cannot be read ({exc})", where=where,
                           fix="see the pod log; a model printing to the log after it ended can cut the block") from None
