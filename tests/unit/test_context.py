"""The run context: safe parsing of user text, merging over host facts, validation, skip_gpu_arch."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_madengine.context import (
    MAX_CONTEXT_CHARS,
    Context,
    build_context,
    deep_merge,
    load_context_file,
    parse_context_string,
    skip_reason,
)
from pytest_madengine.errors import MadError
from pytest_madengine.host import HostFacts

MI300X = HostFacts(gpu_vendor="AMD", gpu_count=8, gpu_architecture="gfx942",
                   gpu_product="AMD Instinct MI300X", render_devices=tuple(range(128, 192, 8)),
                   host_os="DEBIAN", rocm_path="/opt/rocm", machine_name="node-a", hip_version="6.2")
A100 = HostFacts(gpu_vendor="NVIDIA", gpu_count=4, gpu_architecture="sm_80",
                 gpu_product="NVIDIA A100-SXM4-40GB", host_os="UBUNTU", machine_name="node-b")
CPU = HostFacts(host_os="DEBIAN", machine_name="ci")


# --- parse_context_string ----------------------------------------------------------------------

def test_json_and_python_literal_give_the_same_dict():
    as_json = parse_context_string('{"gpu_vendor": "AMD", "guest_os": "UBUNTU"}')
    as_python = parse_context_string("{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}")
    assert as_json == as_python == {"gpu_vendor": "AMD", "guest_os": "UBUNTU"}


def test_python_literals_true_none_and_tuples_become_json_values():
    data = parse_context_string("{'log_error_pattern_scan': False, 'x': None, 'dirs': ('a', 'b')}")
    assert data == {"log_error_pattern_scan": False, "x": None, "dirs": ["a", "b"]}
    json.dumps(data)


def test_empty_text_is_an_empty_context():
    assert parse_context_string("   ") == {}


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(MadError):
        parse_context_string(f"__import__('pathlib').Path({str(marker)!r}).touch()")
    with pytest.raises(MadError):
        parse_context_string("{'a': open('/etc/passwd').read()}")
    assert not marker.exists()


def test_syntax_error_names_option_position_and_fix():
    with pytest.raises(MadError) as info:
        parse_context_string('{"gpu_vendor": "AMD", guest_os: "UBUNTU"}')
    message = str(info.value)
    assert message.startswith("--mad-context:")
    assert "line 1 column 23" in message
    assert "guest_os" in message  # the snippet shows where
    assert "Fix:" in message and "--mad-context \"{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\"" in message


def test_a_list_is_not_a_context():
    with pytest.raises(MadError, match="is a list, not a dict"):
        parse_context_string('["gpu_vendor", "AMD"]')


def test_where_names_the_source():
    with pytest.raises(MadError, match=r"^mad_context \(ini\):"):
        parse_context_string("{oops", where="mad_context (ini)")


@pytest.mark.parametrize("text, fragment", [
    ("{1: 'a'}", "key 1 in context is not a string"),
    ("{'a': {1, 2}}", "context.a is a set"),
    ("{'a': b'raw'}", "context.a is a bytes"),
    ("{'a': [1j]}", "context.a[0] is a complex"),
])
def test_values_json_cannot_hold_are_refused(text, fragment):
    with pytest.raises(MadError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_context_string(text)


def test_too_long_text_is_refused_before_parsing():
    with pytest.raises(MadError, match="limit is 65536") as info:
        parse_context_string("{'a': '" + "x" * MAX_CONTEXT_CHARS + "'}")
    assert "--mad-context-file" in str(info.value)


@pytest.mark.parametrize("text", ["[" * 3000, "{'a':" * 3000, "(" * 500 + ")" * 500, "9" * 5000,
                                  "{'a': 1e999999}", "{'a': -}", "\x00", "{'a': 'b'"])
def test_pathological_input_gives_a_mad_error_or_a_dict(text):
    try:
        assert isinstance(parse_context_string(text), dict)
    except MadError:
        pass


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300)
       | st.text(alphabet="{}[]()'\":,0123456789.eE-+ abcNoneTrueFalse\\\n", max_size=300)
       | st.builds(lambda n, open_, close: open_ * n + close * n, st.integers(0, 3000),
                   st.sampled_from(["[", "{", "(", "{'a':"]), st.sampled_from(["]", "}", ")", ""])))
def test_random_text_yields_only_mad_error_or_dict(text):
    try:
        result = parse_context_string(text)
    except MadError as error:
        assert str(error).startswith("--mad-context:")
        return
    assert isinstance(result, dict)
    json.dumps(result)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), _values, max_size=5), st.booleans())
def test_any_dict_round_trips_as_json_or_python(data, as_python):
    text = repr(data) if as_python else json.dumps(data)
    assert parse_context_string(text) == json.loads(json.dumps(data))


# --- load_context_file -------------------------------------------------------------------------

def test_context_file(tmp_path):
    path = tmp_path / "ctx.json"
    path.write_text('{"docker_env_vars": {"NCCL_DEBUG": "INFO"}}')
    assert load_context_file(path) == {"docker_env_vars": {"NCCL_DEBUG": "INFO"}}


def test_missing_context_file_says_which(tmp_path):
    with pytest.raises(MadError) as info:
        load_context_file(tmp_path / "nope.json")
    assert f"--mad-context-file {tmp_path / 'nope.json'}: the file does not exist" in str(info.value)


def test_bad_json_file_gives_line_and_column(tmp_path):
    path = tmp_path / "ctx.json"
    path.write_text('{\n  "gpu_vendor": "AMD",\n  "guest_os": UBUNTU\n}\n')
    with pytest.raises(MadError, match="invalid JSON at line 3, column 15"):
        load_context_file(path)


def test_context_file_must_hold_an_object(tmp_path):
    path = tmp_path / "ctx.json"
    path.write_text("[1, 2]")
    with pytest.raises(MadError, match="is a list, not a dict"):
        load_context_file(path)


# --- build_context -----------------------------------------------------------------------------

def test_host_facts_become_madengine_context_keys():
    context = build_context(host=MI300X)
    assert isinstance(context, Context)
    assert (context.gpu_vendor, context.guest_os, context.gpu_architecture) == ("AMD", "UBUNTU", "gfx942")
    assert context.get("host_os") == "DEBIAN" and context.n_system_gpus == 8
    assert context.docker_env_vars == {"MAD_GPU_VENDOR": "AMD", "MAD_SYSTEM_NGPUS": "8",
                                       "MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942",
                                       "MAD_SYSTEM_GPU_PRODUCT_NAME": "AMD Instinct MI300X",
                                       "MAD_SYSTEM_HIP_VERSION": "6.2"}
    assert context.docker_build_args == {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942"}
    assert context.docker_mounts == {}
    assert context.get("rocm_path") == "/opt/rocm" and context.get("machine_name") == "node-a"
    assert json.loads(json.dumps(context.to_json())) == context.data


def test_file_then_text_later_wins_and_dicts_merge(tmp_path):
    path = tmp_path / "ctx.json"
    path.write_text(json.dumps({"guest_os": "CENTOS", "docker_env_vars": {"A": "file", "B": "file"},
                                "docker_mounts": {"/data": "/mnt/data"}}))
    context = build_context(context_file=str(path), context_text="{'docker_env_vars': {'B': 'text'}}",
                            host=MI300X)
    assert context.guest_os == "CENTOS"
    assert context.docker_env_vars["A"] == "file" and context.docker_env_vars["B"] == "text"
    assert context.docker_env_vars["MAD_GPU_VENDOR"] == "AMD"  # host keys survive the merge
    assert context.docker_mounts == {"/data": "/mnt/data"}


def test_user_vendor_and_arch_flow_into_env_and_build_args():
    context = build_context(context_text="{'gpu_vendor': 'amd', 'gpu_architecture': 'gfx90a'}", host=CPU)
    assert context.gpu_vendor == "AMD"
    assert context.docker_env_vars["MAD_GPU_VENDOR"] == "AMD"
    assert context.docker_env_vars["MAD_SYSTEM_GPU_ARCHITECTURE"] == "gfx90a"
    assert context.docker_build_args["MAD_SYSTEM_GPU_ARCHITECTURE"] == "gfx90a"


def test_explicit_env_var_beats_the_flowed_value():
    context = build_context(context_text="{'gpu_architecture': 'gfx942', "
                                         "'docker_env_vars': {'MAD_SYSTEM_GPU_ARCHITECTURE': 'gfx942:xnack-'}}",
                            host=CPU)
    assert context.docker_env_vars["MAD_SYSTEM_GPU_ARCHITECTURE"] == "gfx942:xnack-"
    assert context.docker_build_args["MAD_SYSTEM_GPU_ARCHITECTURE"] == "gfx942"


def test_numbers_in_env_vars_become_text():
    context = build_context(context_text="{'docker_env_vars': {'OMP_NUM_THREADS': 8, 'DEBUG': True}}",
                            host=CPU)
    assert context.docker_env_vars["OMP_NUM_THREADS"] == "8"
    assert context.docker_env_vars["DEBUG"] == "true"


def test_unknown_keys_pass_through():
    context = build_context(context_text="{'slurm': {'partition': 'gpu'}, 'custom': [1, 2]}", host=CPU)
    assert context.get("slurm") == {"partition": "gpu"} and context.get("custom") == [1, 2]


@pytest.mark.parametrize("text, fragment", [
    ("{'gpu_vendor': 'INTEL'}", "gpu_vendor 'INTEL' is not one of AMD, NVIDIA, NONE"),
    ("{'docker_env_vars': ['A=1']}", "context key 'docker_env_vars' is a list, not a dict"),
    ("{'docker_env_vars': {'A': {'b': 1}}}", "context key 'docker_env_vars': 'A' must be a string"),
    ("{'docker_mounts': '/data:/data'}", "context key 'docker_mounts' is a str, not a dict"),
    ("{'docker_gpus': [0, 1]}", "context key 'docker_gpus' must be a string"),
    ("{'pre_scripts': ['run.sh']}", "context key 'pre_scripts' has the wrong shape"),
    ("{'pre_scripts': [{'args': '-v'}]}", "context key 'pre_scripts' has the wrong shape"),
    ("{'log_error_patterns': 'OOM'}", "context key 'log_error_patterns' has the wrong shape"),
    ("{'n_system_gpus': 'eight'}", "n_system_gpus 'eight' is not a GPU count"),
])
def test_known_keys_are_type_checked(text, fragment):
    with pytest.raises(MadError) as info:
        build_context(context_text=text, host=CPU)
    message = str(info.value)
    assert message.startswith("--mad-context:") and fragment in message and "Fix:" in message


def test_valid_scripts_and_patterns_are_accepted():
    context = build_context(host=CPU, context_text=(
        "{'pre_scripts': [{'path': 'scripts/common/pre.sh', 'args': '-v'}], "
        "'post_scripts': [{'path': 'post.sh'}], 'log_error_patterns': ['OOM'], 'docker_gpus': 0}"))
    assert context.get("pre_scripts")[0]["path"] == "scripts/common/pre.sh"
    assert context.get("docker_gpus") == "0"


def test_gpus_option_declares_gpus_on_a_host_without_any():
    context = build_context(host=CPU, gpus_option="0-3", context_text="{'gpu_vendor': 'AMD'}")
    assert context.n_system_gpus == 4 and context.docker_env_vars["MAD_SYSTEM_NGPUS"] == "4"
    assert build_context(host=MI300X, gpus_option="0-1").n_system_gpus == 8  # a subset of real GPUs
    assert build_context(host=CPU, gpus_option="none").n_system_gpus == 0
    with pytest.raises(MadError, match="--mad-gpus"):
        build_context(host=CPU, gpus_option="zero")


def test_the_caller_cannot_mutate_the_context_through_to_json():
    context = build_context(host=MI300X)
    context.to_json()["docker_env_vars"]["X"] = "1"
    assert "X" not in context.docker_env_vars


def test_deep_merge_does_not_touch_its_inputs():
    base, over = {"a": {"b": 1}}, {"a": {"c": 2}}
    assert deep_merge(base, over) == {"a": {"b": 1, "c": 2}}
    assert base == {"a": {"b": 1}}


# --- skip_gpu_arch -----------------------------------------------------------------------------

@pytest.mark.parametrize("host, skip, skipped", [
    (MI300X, ("gfx942",), True),
    (MI300X, ("gfx908", "gfx90a"), False),
    (MI300X, (" gfx942 ",), True),
    (MI300X, ("GFX942",), True),
    (MI300X, ("gfx94",), False),  # exact names, not prefixes
    (A100, ("A100",), True),
    (A100, ("NVIDIA A100-SXM4",), True),
    (A100, ("H100", "gfx942"), False),
    (A100, ("sm_80",), True),
    (CPU, ("gfx942", "A100"), False),
    (MI300X, (), False),
])
def test_skip_gpu_arch(host, skip, skipped):
    reason = skip_reason(skip, build_context(host=host))
    assert (reason is not None) == skipped
    if skipped:
        assert "skip_gpu_arch" in reason


def test_skip_uses_the_user_given_architecture():
    context = build_context(host=CPU, context_text="{'gpu_vendor': 'AMD', 'gpu_architecture': 'gfx950'}")
    assert skip_reason(("gfx950",), context) == (
        "skip_gpu_arch lists 'gfx950', which matches this machine's GPU (gfx950)")


def test_user_gpu_product_flows_into_mad_system_gpu_product_name():
    context = build_context(context_text="{'gpu_product': 'AMD Instinct MI325X'}", host=MI300X)
    assert context.docker_env_vars["MAD_SYSTEM_GPU_PRODUCT_NAME"] == "AMD Instinct MI325X"
    assert context.docker_env_vars["MAD_SYSTEM_HIP_VERSION"] == "6.2"
