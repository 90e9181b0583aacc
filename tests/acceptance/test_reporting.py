"""What a person reads at the end of a session in a CI log: narrow results table, build-only summary."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from .conftest import AMD_CPU, card, write_card_package

pytestmark = pytest.mark.docker

STATUS = re.compile(r"\b(SUCCESS|FAILURE|SKIPPED|BUILT|REUSED|REFERENCED)\b")
FAILING_OUTPUT = ("echo 'Traceback (most recent call last):'\n"
                  "echo '  File \"train.py\", line 12, in <module>'\n"
                  "echo 'RuntimeError: HIP out of memory. Tried to allocate 20.00 GiB (GPU 0; 64.00 GiB total)'\n"
                  "exit 3\n")


def mad_section(output: str) -> list[str]:
    """The lines of the MAD results section of a session's terminal output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "MAD results" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start + 1:end]


def status_of(section: list[str], model: str) -> str:
    """The status shown with ``model``: on its line (table) or the next one (narrow block layout)."""
    index = next(i for i, line in enumerate(section) if re.search(rf"(^|[\s│]){re.escape(model)}($|[\s│])", line))
    found = STATUS.search(section[index]) or STATUS.search(section[index + 1])
    assert found, f"no status next to {model}:\n" + "\n".join(section)
    return found.group(1)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


def run_args(pkg: Path, *more: str) -> tuple[str, ...]:
    return ("--mad-package", str(pkg), "--mad-tags", "tiny", AMD_CPU, "--mad-gpus", "none", "-p",
            "no:cacheprovider", *more)


@pytest.mark.parametrize("columns", [80, 60])
def test_narrow_log_shows_every_name_and_status(pytester: pytest.Pytester, busybox_image: str,
                                                monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    """Issue 16: in an 80-column CI log a failure's reason squeezed name and status out of the table."""
    monkeypatch.setenv("COLUMNS", str(columns))
    passing, failing, short = "a_passing_model_with_a_long_name", "a_failing_model_with_a_long_name", "ok16"
    pkg = write_card_package(pytester.path / "pkg", [
        card(passing, "scripts/ok.sh"), card(failing, "scripts/bad.sh"), card(short, "scripts/ok.sh"),
    ], {"scripts/ok.sh": "echo performance: 3.5 ops\n", "scripts/bad.sh": FAILING_OUTPUT})
    result = pytester.runpytest(*run_args(pkg))
    result.assert_outcomes(passed=2, failed=1)
    section = mad_section(result.stdout.str())
    assert {model: status_of(section, model) for model in (passing, failing, short)} == {
        passing: "SUCCESS", failing: "FAILURE", short: "SUCCESS"}
    assert "exit code 3" in " ".join(section)  # the reason is there too, wrapped
    assert all(len(line) <= columns for line in section), "\n".join(section)
    assert "3 model runs: 2 passed, 1 failed" in result.stdout.str()


def test_build_only_summary_tells_built_reused_failed(pytester: pytest.Pytester, busybox_image: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: --mad-build-only ended with '1 model run ... results appended to perf.csv'."""
    monkeypatch.setenv("COLUMNS", "80")
    good, broken = unique("builds"), unique("broken")
    pkg = write_card_package(pytester.path / "pkg", [
        card(good, "scripts/ok.sh"), card(broken, "scripts/ok.sh", dockerfile="docker/broken"),
    ], {"scripts/ok.sh": "echo performance: 3.5 ops\n",
        "docker/broken.ubuntu.amd.Dockerfile": "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\n"
                                               "FROM mad-test/busybox:latest\nRUN exit 3\n"})
    try:
        first = pytester.runpytest(*run_args(pkg, "--mad-build-only"))
        second = pytester.runpytest(*run_args(pkg, "--mad-build-only"))
    finally:
        remove_images(f"ci-{good}_tiny.ubuntu.amd")
    for result, (built, reused) in ((first, (1, 0)), (second, (0, 1))):
        result.assert_outcomes(passed=1, failed=1)
        section = mad_section(result.stdout.str())
        assert status_of(section, good) == ("BUILT" if built else "REUSED")
        assert status_of(section, broken) == "FAILURE"
        assert section[-1] == "build manifest written to build_manifest.json"
        totals = " ".join(section[-3:-1])  # the totals line may wrap at 80 columns
        assert (f"2 models built only (none run): images {built} built, {reused} reused, 0 pushed, 1 failed;"
                in totals), "\n".join(section)
        text = result.stdout.str()
        assert "model run" not in text and "perf.csv" not in text
    assert not (pytester.path / "perf.csv").exists() and not (pytester.path / "perf_entry.csv").exists()


def remove_images(*names: str) -> None:
    import docker

    client = docker.from_env()
    for name in names:
        try:
            client.images.remove(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_a_session_leaves_the_package_as_it_found_it(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("tidy", "scripts/ok.sh", tags=["tiny"])],
                             {"scripts/ok.sh": "echo performance: 1 ops\n"})
    before = sorted(path.relative_to(pkg) for path in pkg.rglob("*"))
    result = pytester.runpytest(*run_args(pkg))
    result.assert_outcomes(passed=1)
    after = sorted(path.relative_to(pkg) for path in pkg.rglob("*"))
    # The results history is the one thing a session adds, where --mad-history says (default .mad/).
    assert [path for path in after if path.parts[0] != ".mad"] == before
    assert Path(".mad/history.sqlite") in after
    # A run_directory the user had (with content) is theirs: it stays.
    (pkg / "run_directory").mkdir()
    (pkg / "run_directory" / "notes.txt").write_text("mine")
    pytester.runpytest(*run_args(pkg)).assert_outcomes(passed=1)
    assert (pkg / "run_directory" / "notes.txt").read_text() == "mine"
