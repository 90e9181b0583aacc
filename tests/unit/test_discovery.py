"""Package discovery: registries, path rewriting, dynamic scripts, caching, every error."""
from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_madengine.discovery import Package, load_package
from pytest_madengine.discovery.package import read_registry
from pytest_madengine.errors import MadError

EDGE = Path(__file__).resolve().parents[1] / "packages" / "edge"


def card(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "dockerfile": "docker/x", "scripts": "run.sh", **fields}


def make_package(root: Path, cards: Any = (), dirs: dict[str, Any] | None = None) -> Path:
    """A package at root. ``dirs`` maps dir name → card list, raw JSON text, or ("py", source)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models.json").write_text(cards if isinstance(cards, str) else json.dumps(list(cards)))
    for dirname, content in (dirs or {}).items():
        family = root / "scripts" / dirname
        family.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            (family / "get_models_json.py").write_text(textwrap.dedent(content[1]))
        else:
            text = content if isinstance(content, str) else json.dumps(content)
            (family / "models.json").write_text(text)
    return root


def load(root: Path, **kwargs: Any) -> Package:
    kwargs.setdefault("context", {})
    return load_package(root, **kwargs)


def names(package: Package) -> list[str]:
    return [c.name for c in package.cards]


# --- the edge package: every discovery form ---------------------------------------------------

@pytest.fixture(scope="module")
def edge() -> Package:
    return load_package(EDGE, context={"guest_os": "UBUNTU"})


def test_edge_order_root_then_dirs_sorted_in_file_order(edge: Package) -> None:
    assert names(edge) == [
        "pyt_wan2.1_inference", "edge_root_all_gpus",
        "family_a/model.a-1", "family_a/model_a_2",
        "family_b/dyn_0", "family_b/dyn_1", "family_b/dyn_hooked",
    ]
    assert edge.root == EDGE


def test_edge_ignores_common_nested_and_registryless_dirs(edge: Package) -> None:
    assert not any("ignored" in name for name in names(edge))


def test_edge_root_card_is_lenient_and_keeps_unknown_keys(edge: Package) -> None:
    wan = edge.cards[0]
    assert wan.tags == ("edge", "root", "inference")  # comma string, spaces stripped
    assert wan.n_gpus == 1 and wan.timeout == 600
    assert wan.raw["x_custom_key"] == {"kept": ["as", "is"]}
    assert wan.dockerfile == "docker/edge" and wan.scripts == "scripts/root_models/run.sh"
    assert wan.dockercontext == "docker" and wan.directory is None
    assert edge.cards[1].timeout is None and edge.cards[1].skip_gpu_arch == ("gfx908", "A100")


def test_edge_per_dir_paths_are_root_relative_and_normalised(edge: Package) -> None:
    first, second = edge.cards[2], edge.cards[3]
    assert first.dockerfile == "docker/edge_family"
    assert first.scripts == second.scripts == "scripts/family_a/run.sh"  # "./tools/../run.sh"
    assert first.directory == "family_a" and first.short_name == "model.a-1"
    assert first.source == "scripts/family_a/models.json"
    assert first.env_vars == {"EDGE_A": "1"}
    assert first.to_dict()["name"] == "family_a/model.a-1"
    for c in edge.cards:
        assert (EDGE / c.scripts).is_file(), c.name
        prefix = EDGE / c.dockerfile
        assert list(prefix.parent.glob(prefix.name + ".*Dockerfile")), c.name


def test_edge_dynamic_cards_use_the_shim_and_keep_extras(edge: Package) -> None:
    dyn0, dyn1, hooked = edge.cards[4:]
    assert dyn0.args == "--variant 0" and dyn1.env_vars == {"EDGE_B": "1"}
    assert dyn0.source == "scripts/family_b/get_models_json.py"
    # update_model() filled the paths; they were then rewritten like static cards
    assert hooked.dockerfile == "docker/edge_family" and hooked.scripts == "scripts/family_b/run.sh"
    assert hooked.tags == ("family_b", "ubuntu")  # read from MAD_CONTEXT


def test_edge_dynamic_script_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_B_VARIANTS", "4")
    package = load_package(EDGE, context={})
    assert [c.short_name for c in package.cards if c.directory == "family_b"] == \
        ["dyn_0", "dyn_1", "dyn_2", "dyn_3", "dyn_hooked"]
    assert package.cards[-1].tags == ("family_b", "none")


def test_loading_writes_nothing_into_the_package(edge: Package) -> None:
    assert not list(EDGE.rglob("__pycache__"))


# --- static registries ------------------------------------------------------------------------

def test_path_rewriting_never_splits_dotted_names(tmp_path: Path) -> None:
    root = make_package(tmp_path, dirs={"pyt_wan2.1": [card(
        "pyt_wan2.1_inference", dockerfile="../../docker/pyt_wan2.1_inference",
        scripts="scripts/run.slurm", dockercontext="docker/ctx")]})
    only = load(root).cards[0]
    assert only.name == "pyt_wan2.1/pyt_wan2.1_inference"
    assert only.dockerfile == "docker/pyt_wan2.1_inference"
    assert only.scripts == "scripts/pyt_wan2.1/scripts/run.slurm"
    assert only.dockercontext == "docker/ctx"  # not rewritten


def test_no_scripts_dir_and_empty_root_are_fine(tmp_path: Path) -> None:
    assert load(make_package(tmp_path)).cards == ()


def test_missing_package_dir_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MadError, match="does not exist") as info:
        load(tmp_path / "nope")
    assert "--mad-package" in str(info.value)


def test_missing_root_registry_names_path_and_fix(tmp_path: Path) -> None:
    (tmp_path / "scripts" / "a").mkdir(parents=True)
    with pytest.raises(MadError) as info:
        load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "models.json") in message
    assert "--mad-package" in message and "[]" in message


@pytest.mark.parametrize("where", ["root", "dir"])
def test_malformed_json_names_file_line_and_column(tmp_path: Path, where: str) -> None:
    bad = '[\n  {"name": "a",\n    "dockerfile": "x" "scripts": "y"}\n]'
    root = make_package(tmp_path, cards=bad) if where == "root" else \
        make_package(tmp_path, dirs={"fam": bad})
    with pytest.raises(MadError) as info:
        load(root)
    file = "models.json" if where == "root" else "scripts/fam/models.json"
    assert f"{file}:3:23" in str(info.value)
    assert "line 3, column 23" in str(info.value) and "Fix:" in str(info.value)


@pytest.mark.parametrize("text, kind", [('{"name": "a"}', "object"), ('"x"', "string"), ("3", "number")])
def test_top_level_must_be_a_list(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(MadError, match=f"top level is a JSON {kind}, not a list"):
        load(make_package(tmp_path, dirs={"fam": text}))


def test_entry_must_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(MadError, match=r"scripts/fam/models.json: entry 1 is a JSON list"):
        load(make_package(tmp_path, dirs={"fam": [card("a"), ["b"]]}))


def test_missing_required_field_names_file_and_card(tmp_path: Path) -> None:
    broken = {"name": "nodocker", "scripts": "run.sh"}
    with pytest.raises(MadError) as info:
        load(make_package(tmp_path, dirs={"fam": [broken]}))
    message = str(info.value)
    assert "scripts/fam/models.json" in message and "'nodocker'" in message and "dockerfile" in message


@pytest.mark.parametrize("field, value, expected", [
    ("dockerfile", 5, "'dockerfile' is a JSON number, not a string"),
    ("name", ["a"], "'name' is a JSON list, not a string"),
    ("env_vars", ["A=1"], "'env_vars' is a JSON list, not an object"),
    ("n_gpus", "eight", "n_gpus 'eight' is not a number"),
    ("timeout", 1e999, "timeout inf is not a number of seconds"),
])
def test_field_types_are_checked(tmp_path: Path, field: str, value: Any, expected: str) -> None:
    with pytest.raises(MadError, match=expected):
        load(make_package(tmp_path, cards=[{**card("a"), field: value}]))


def test_duplicate_full_names_name_both_files(tmp_path: Path) -> None:
    root = make_package(tmp_path, cards=[card("fam/x")], dirs={"fam": [card("x")]})
    with pytest.raises(MadError, match="'fam/x' is defined twice") as info:
        load(root)
    assert "models.json and scripts/fam/models.json" in str(info.value)


def test_duplicate_within_one_file(tmp_path: Path) -> None:
    with pytest.raises(MadError, match="defined twice"):
        load(make_package(tmp_path, cards=[card("a"), card("a")]))


def test_same_short_name_in_two_dirs_is_fine(tmp_path: Path) -> None:
    root = make_package(tmp_path, dirs={"b": [card("x")], "a": [card("x")]})
    assert names(load(root)) == ["a/x", "b/x"]


def test_both_registries_in_one_dir_is_an_error(tmp_path: Path) -> None:
    root = make_package(tmp_path, dirs={"fam": [card("a")]})
    (root / "scripts" / "fam" / "get_models_json.py").write_text("def list_models(): return []\n")
    with pytest.raises(MadError, match="both models.json and get_models_json.py") as info:
        load(root)
    assert "keep one" in str(info.value)


def test_not_utf8_is_reported(tmp_path: Path) -> None:
    root = make_package(tmp_path)
    (root / "models.json").write_bytes(b'[{"name": "\xff"}]')
    with pytest.raises(MadError, match="not UTF-8"):
        load(root)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    root = make_package(tmp_path)
    (root / "models.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([card("a")]).encode())
    assert names(load(root)) == ["a"]


# --- property: random registry text only ever raises MadError ----------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CARD_KEYS = st.sampled_from(["name", "dockerfile", "scripts", "n_gpus", "timeout", "tags", "args",
                             "env_vars", "docker_build_arg", "skip_gpu_arch", "distributed", "x"])
CARDLIKE = st.lists(st.dictionaries(CARD_KEYS, JSON_VALUES | st.just("a"), max_size=8), max_size=4)
REGISTRY_TEXT = st.one_of(
    st.text(max_size=60),
    JSON_VALUES.map(lambda v: json.dumps(v)),
    CARDLIKE.map(json.dumps),
    CARDLIKE.map(lambda v: json.dumps(v)[: max(0, len(json.dumps(v)) - 3)]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(root_text=REGISTRY_TEXT, dir_text=REGISTRY_TEXT)
def test_random_registries_raise_only_mad_error(tmp_path: Path, root_text: str, dir_text: str) -> None:
    root = make_package(tmp_path / "pkg", cards=root_text, dirs={"fam": dir_text})
    try:
        package = load(root)
    except MadError as error:
        assert error.where and error.fix
    else:
        assert all(c.name and c.dockerfile and c.scripts for c in package.cards)


def test_deep_nesting_is_a_mad_error(tmp_path: Path) -> None:
    root = make_package(tmp_path, cards="[" * 100_000 + "]" * 100_000)
    with pytest.raises(MadError):
        read_registry(root / "models.json")


# --- dynamic get_models_json.py -----------------------------------------------------------------

def dynamic(tmp_path: Path, source: str) -> Path:
    return make_package(tmp_path / "pkg", dirs={"dyn": ("py", source)})


def test_dynamic_plain_dicts_and_cwd_is_package_root(tmp_path: Path) -> None:
    root = dynamic(tmp_path, """
        import os
        def list_models():
            return [{"name": "d", "dockerfile": "../../docker/d", "scripts": "run.sh",
                     "args": os.getcwd()}]
    """)
    only = load(root).cards[0]
    assert (only.name, only.dockerfile, only.args) == ("dyn/d", "docker/d", str(root))


def test_dynamic_update_model_sees_the_full_name(tmp_path: Path) -> None:
    root = dynamic(tmp_path, """
        from madengine.utils.discover_models import CustomModel
        class M(CustomModel):
            def update_model(self):
                self.args = "--seen " + self.name
                self.dockerfile, self.scripts = "../../docker/m", "run.sh"
        def list_models():
            return [M(name="m")]
    """)
    only = load(root).cards[0]
    assert only.name == "dyn/m" and only.args == "--seen dyn/m"


def test_dynamic_shim_wins_over_installed_madengine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "site" / "madengine"
    (fake / "core").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "values.py").write_text("VALUE = 'from-real-madengine'\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    root = dynamic(tmp_path, """
        from madengine.utils.discover_models import CustomModel
        from madengine.core.values import VALUE
        def list_models():
            return [CustomModel(name="m", dockerfile="d", scripts="s", args=VALUE, slurm={"n": 1})]
    """)
    only = load(root).cards[0]
    assert only.args == "from-real-madengine" and only.slurm == {"n": 1}


def test_dynamic_crash_shows_stderr_tail_and_script(tmp_path: Path) -> None:
    root = dynamic(tmp_path, """
        import sys
        print("chatter before the crash", file=sys.stderr)
        def list_models():
            raise RuntimeError("boom from the script")
    """)
    with pytest.raises(MadError) as info:
        load(root)
    message = str(info.value)
    assert "RuntimeError: boom from the script" in message
    assert str(root / "scripts" / "dyn" / "get_models_json.py") in message
    assert "exit code 1" in message


@pytest.mark.parametrize("source, expected", [
    ("X = 1\n", "defines no list_models()"),
    ("def list_models():\n    return {'name': 'a'}\n", "returned a dict, not a list"),
    ("def list_models():\n    return [42]\n", "item 0 of list_models() is a int"),
    ("import sys\nsys.exit(0)\n", "could not be read as JSON"),
    ("def list_models():\n    return [{'name': 'a', 'scripts': 's'}]\n", "missing required field(s) dockerfile"),
])
def test_dynamic_contract_errors(tmp_path: Path, source: str, expected: str) -> None:
    with pytest.raises(MadError) as info:
        load(dynamic(tmp_path, source))
    assert expected in str(info.value)
    assert "get_models_json.py" in str(info.value)


def test_dynamic_hang_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    root = dynamic(tmp_path, f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])  # inherits the output pipes
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """)
    started = time.monotonic()
    with pytest.raises(MadError, match="hung for 2 s") as info:
        load(root, timeout=2)
    assert time.monotonic() - started < 15
    assert "get_models_json.py" in str(info.value) and "--mad-discover-timeout" in str(info.value)
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


COUNTING_SCRIPT = """
    import os
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write("x")
    def list_models():
        return [{"name": "c", "dockerfile": "d", "scripts": "s", "args": "%s"}]
"""


def test_dynamic_results_are_cached_by_script_and_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = tmp_path / "count"
    monkeypatch.setenv("COUNT_FILE", str(count))
    cache = tmp_path / "cache"
    root = dynamic(tmp_path, COUNTING_SCRIPT % "v1")
    first = load(root, cache_dir=cache)
    again = load(root, cache_dir=cache)
    assert count.read_text() == "x" and first == again  # the hit did not run the script
    assert len(list(cache.glob("dynamic-*.json"))) == 1
    load(root, cache_dir=cache, context={"gpu_vendor": "AMD"})
    assert count.read_text() == "xx"  # another context is another key
    (root / "scripts" / "dyn" / "get_models_json.py").write_text(textwrap.dedent(COUNTING_SCRIPT % "v2"))
    assert load(root, cache_dir=cache).cards[0].args == "v2"
    assert count.read_text() == "xxx"
    load(root)
    assert count.read_text() == "xxxx"  # no cache_dir: always runs


def test_dynamic_context_reaches_the_script(tmp_path: Path) -> None:
    root = dynamic(tmp_path, """
        import json, os
        def list_models():
            vendor = json.loads(os.environ["MAD_CONTEXT"])["gpu_vendor"]
            return [{"name": "v", "dockerfile": "d", "scripts": "s", "tags": [vendor]}]
    """)
    assert load(root, context={"gpu_vendor": "NVIDIA"}).cards[0].tags == ("NVIDIA",)
