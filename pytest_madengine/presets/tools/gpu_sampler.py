"""Samples GPU power or VRAM while a model runs: ``python3 gpu_sampler.py power|vram [--] <command...>``.

Settings (madengine's names): ``<MODE>_DEVICE`` ("all" or ids "0,1"), ``<MODE>_SAMPLING_RATE`` (seconds
between samples, default 0.1), ``<MODE>_OUTPUT_FILE`` (default ``gpu_info_<mode>_profiler_output.csv``),
MODE = POWER or VRAM. The first vendor tool that answers is used: ``amd-smi metric --power --mem-usage
--json``, ``rocm-smi --showpower --showmeminfo vram --json``, ``nvidia-smi --query-gpu=index,power.draw,
memory.used,memory.total --format=csv,noheader,nounits``. The CSV has one row per sample and device:
``time_s,device,power_w`` or ``time_s,device,vram_used_mib,vram_total_mib``. The model's output passes
through; the exit code is the model's.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
import time

TOOLS = (
    ("amd-smi", ["amd-smi", "metric", "--power", "--mem-usage", "--json"]),
    ("rocm-smi", ["rocm-smi", "--showpower", "--showmeminfo", "vram", "--json"]),
    ("nvidia-smi", ["nvidia-smi", "--query-gpu=index,power.draw,memory.used,memory.total",
                    "--format=csv,noheader,nounits"]),
)
MIB = 1024 * 1024


def number(value):
    """A float from 150, "150.0", {"value": 150, "unit": "W"}; None for "N/A" and the like."""
    if isinstance(value, dict):
        value = value.get("value")
    try:
        return float(str(value).split()[0])
    except (ValueError, IndexError):
        return None


def parse_amd_smi(text):
    data = json.loads(text)
    rows = data.get("gpu_data", []) if isinstance(data, dict) else data
    samples = {}
    for row in rows:
        power, memory = row.get("power") or {}, row.get("mem_usage") or {}
        watts = next((number(power[key]) for key in ("socket_power", "current_socket_power", "average_socket_power")
                      if number(power.get(key)) is not None), None)
        samples[int(row["gpu"])] = (watts, number(memory.get("used_vram")), number(memory.get("total_vram")))
    return samples


def parse_rocm_smi(text):
    samples = {}
    for card, fields in json.loads(text).items():
        if not card.startswith("card"):
            continue
        watts = next((number(v) for k, v in fields.items() if "Power (W)" in k and number(v) is not None), None)
        used, total = number(fields.get("VRAM Total Used Memory (B)")), number(fields.get("VRAM Total Memory (B)"))
        samples[int(card[4:])] = (watts, used / MIB if used is not None else None,
                                  total / MIB if total is not None else None)
    return samples


def parse_nvidia_smi(text):
    samples = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) == 4 and cells[0].isdigit():
            samples[int(cells[0])] = (number(cells[1]), number(cells[2]), number(cells[3]))
    return samples


PARSERS = {"amd-smi": parse_amd_smi, "rocm-smi": parse_rocm_smi, "nvidia-smi": parse_nvidia_smi}


def read(tool):
    name, argv = tool
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        return PARSERS[name](done.stdout) if done.stdout.strip() else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, subprocess.SubprocessError):
        return {}


def find_tool():
    for tool in TOOLS:
        if shutil.which(tool[0]) and read(tool):
            return tool
    return None


def sample(tool, mode, devices, rate, rows, stop, started):
    while True:
        now = round(time.monotonic() - started, 3)
        for device, (watts, used, total) in sorted(read(tool).items()):
            if devices is None or device in devices:
                rows.append([now, device, watts] if mode == "power" else [now, device, used, total])
        if stop.wait(rate):
            return


def main(argv):
    if len(argv) < 2 or argv[0] not in ("power", "vram"):
        print("usage: gpu_sampler.py power|vram [--] <command...>", file=sys.stderr)
        return 2
    mode, command = argv[0], argv[1:]
    if command and command[0] == "--":
        command = command[1:]
    prefix = mode.upper()
    chosen = os.environ.get(f"{prefix}_DEVICE", "all")
    devices = None if chosen in ("", "all") else {int(part) for part in chosen.split(",") if part.strip().isdigit()}
    rate = float(os.environ.get(f"{prefix}_SAMPLING_RATE", "0.1") or 0.1)
    output = os.environ.get(f"{prefix}_OUTPUT_FILE", f"gpu_info_{mode}_profiler_output.csv")
    tool = find_tool()
    if tool is None:
        print(f"gpu_sampler: no GPU tool answered (amd-smi, rocm-smi, nvidia-smi); {output} has no samples",
              file=sys.stderr)
    rows, stop, started = [], threading.Event(), time.monotonic()
    thread = threading.Thread(target=sample, args=(tool, mode, devices, rate, rows, stop, started), daemon=True)
    if tool is not None:
        thread.start()
    code = subprocess.call(command)
    stop.set()
    if tool is not None:
        thread.join(timeout=15)
    with open(output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", "device", "power_w"] if mode == "power"
                        else ["time_s", "device", "vram_used_mib", "vram_total_mib"])
        writer.writerows(rows)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
