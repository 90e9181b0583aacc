"""Counts the library calls a model makes: ``python3 library_trace.py [--] <model command...>``.

Which libraries: the flags the catalogue's tools set (ROCBLAS_TRACE, HIPBLASLT_TRACE, MIOPEN_TRACE,
TENSILE_TRACE, RCCL_TRACE; several stack). The model runs with each library's documented logging
switched on (rocBLAS ``ROCBLAS_LAYER=2`` bench lines, hipBLASLt ``HIPBLASLT_LOG_MASK=32`` bench lines,
MIOpen ``MIOPEN_ENABLE_LOGGING_CMD=1`` driver commands, Tensile ``TENSILE_DB=0x8000`` kernel names,
RCCL ``NCCL_DEBUG=INFO`` + ``NCCL_DEBUG_SUBSYS=COLL`` collective lines); its output passes through
unchanged, and every distinct configuration is counted into ``library_trace.csv`` (``OUTPUT_FILE``)
with madengine's columns jobid, created_date, model, library, config, calls. Exits with the model's code.
"""
import csv
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime

LIBRARIES = {  # flag: (library, env that switches its logging on, pattern whose group 1 is the config)
    "ROCBLAS_TRACE": ("rocblas", {"ROCBLAS_LAYER": "2"}, re.compile(r"(\S*rocblas-bench .*?)\s*$")),
    "HIPBLASLT_TRACE": ("hipblaslt", {"HIPBLASLT_LOG_MASK": "32"}, re.compile(r"(\S*hipblaslt-bench .*?)\s*$")),
    "MIOPEN_TRACE": ("miopen", {"MIOPEN_ENABLE_LOGGING_CMD": "1"}, re.compile(r"(\S*MIOpenDriver .*?)\s*$")),
    "TENSILE_TRACE": ("tensile", {"TENSILE_DB": "0x8000"}, re.compile(r"^Running kernel: (.*?)\s*$")),
    "RCCL_TRACE": ("rccl", {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "COLL"},
                   re.compile(r"NCCL INFO (\w+): opCount \S+ .*?(count \d+ datatype \d+ op \d+).*?(\[nranks=\d+\])?")),
}


def config_of(match):
    return " ".join(group for group in match.groups() if group)


def main(argv):
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: library_trace.py [--] <command...>", file=sys.stderr)
        return 2
    wanted = [spec for flag, spec in LIBRARIES.items() if os.environ.get(flag, "") not in ("", "0")]
    env = dict(os.environ)
    for _, switches, _ in wanted:
        env.update(switches)
    counts = Counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for raw in process.stdout:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        line = raw.decode("utf-8", "replace")
        for library, _, pattern in wanted:
            match = pattern.search(line)
            if match:
                counts[(library, config_of(match))] += 1
    code = process.wait()
    write_csv(os.environ.get("OUTPUT_FILE", "library_trace.csv"), counts)
    return code


def write_csv(path, counts):
    created = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    job, model = os.environ.get("JENKINS_BUILD_NUMBER", "0"), os.environ.get("MAD_MODEL_NAME", "")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["jobid", "created_date", "model", "library", "config", "calls"])
        for (library, config), calls in sorted(counts.items()):
            writer.writerow([job, created, model, library, config, calls])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
