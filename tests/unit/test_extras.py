"""A feature used without its extra (pyproject ``[project.optional-dependencies]``) is a usage error
naming the ``pip install 'pytest-madengine[...]'`` line: pytest exit 4, the commands exit 2, one line."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from pytest_madengine.__main__ import main
from pytest_madengine.errors import MadError
from pytest_madengine.extras import EXTRA_OF_MODULE, install_line, require

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mad-hub"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_every_extra_module_is_an_extra_of_pyproject() -> None:
    import tomllib

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    for module, extra in EXTRA_OF_MODULE.items():
        assert any(dep.startswith(module) for dep in extras[extra]), (module, extra)
    assert not [dep for dep in project["dependencies"] if dep.split(">")[0] in EXTRA_OF_MODULE]
    everything = extras["all"][0].removeprefix("pytest-madengine[").removesuffix("]").split(",")
    assert set(everything) == set(EXTRA_OF_MODULE.values())
    assert "pytest-madengine[all]" in extras["test"]


def test_require_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymongo", None)
    with pytest.raises(MadError) as info:
        require("pymongo", "database upload")
    assert "database upload needs the Python package 'pymongo'" in info.value.message
    assert info.value.message.endswith(f"Fix: {install_line('mongo')}.")
    require("kubernetes", "--mad-target k8s")  # installed (the test extra has every extra): no error


def test_k8s_target_without_the_extra_is_a_usage_error(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLE, pytester.path / "hub")
    pytester.makeconftest("import sys\nsys.modules['kubernetes'] = None  # as if not installed\n")
    result = pytester.runpytest_subprocess("--mad-package", "hub", "--mad-tags", "dummy", "--mad-target", "k8s",
                                           "--mad-context-file", "hub/context.cpu.json", "--mad-gpus", "none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--mad-target k8s needs the Python package 'kubernetes'" in err
    assert "pip install 'pytest-madengine[k8s]'" in err
    assert "Traceback" not in result.stdout.str() + err
    assert not (pytester.path / "perf.csv").exists()


@pytest.mark.parametrize(("argv", "module", "extra"), [
    (["database", "upload", "{csv}", "--db", "d", "-c", "c"], "pymongo", "mongo"),
])
def test_commands_without_the_extra_print_one_line(argv: list[str], module: str, extra: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_madengine.history.store import HistoryStore

    csv = tmp_path / "perf.csv"
    csv.write_text("model,performance,metric,status\ndummy,1,ops,SUCCESS\n")
    with HistoryStore(tmp_path / "history.sqlite"):
        pass
    monkeypatch.setitem(sys.modules, module, None)
    status = main([part.format(csv=csv, history=tmp_path / "history.sqlite") for part in argv])
    out, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"pip install 'pytest-madengine[{extra}]'" in err
    assert out == ""


def test_console_command_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_madengine.__main__ import console_main

    with pytest.raises(SystemExit):
        sys.argv = ["pytest-madengine", "--help"]
        console_main()
    assert capsys.readouterr().out.startswith("usage: pytest-madengine ")
