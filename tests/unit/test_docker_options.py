"""Docker SDK kwargs per vendor, environment, mounts and card run options (no engine needed)."""
from __future__ import annotations

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.targets.local import options as options_module
from pytest_madengine.targets.local.options import assemble_options, host_device_options, parse_run_options
from tests.docker.fakes import FakeContext, amd_context, make_card

WHERE = "models.json: card 'm'"


@pytest.fixture(autouse=True)
def no_host_devices(monkeypatch):
    """The GPU device tests see only GPU devices, whatever this host has (/dev/fuse: its own test)."""
    monkeypatch.setattr(options_module, "HOST_DEVICES", ())


def test_madengines_privileges_and_fuse_where_the_host_has_it(monkeypatch):
    monkeypatch.setattr(options_module, "HOST_DEVICES", ("/dev/fuse",))
    assert host_device_options(lambda path: True) == {"devices": ["/dev/fuse:/dev/fuse:rwm"]}
    assert host_device_options(lambda path: False) == {}
    options = assemble_options(make_card(), FakeContext({"gpu_vendor": "NONE"}), ())
    assert {"SYS_PTRACE", "SYS_ADMIN"} <= set(options["cap_add"])
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(options["security_opt"])


def test_common_flags_map_to_sdk_kwargs():
    kwargs = parse_run_options(
        "--shm-size 128g -e A=1 --env=B=two=2 -v /data:/data:ro --ipc=host --network host --cap-add SYS_ADMIN "
        "--device=/dev/infiniband --security-opt apparmor=unconfined --ulimit memlock=-1:-1 "
        "--group-add render -u root --privileged --rm -it", where=WHERE)
    ulimit = kwargs.pop("ulimits")[0]
    assert (ulimit["Name"], ulimit["Soft"], ulimit["Hard"]) == ("memlock", -1, -1)
    assert kwargs == {
        "shm_size": "128g", "environment": {"A": "1", "B": "two=2"}, "volumes": ["/data:/data:ro"],
        "ipc_mode": "host", "network_mode": "host", "cap_add": ["SYS_ADMIN"], "devices": ["/dev/infiniband"],
        "security_opt": ["apparmor=unconfined"], "group_add": ["render"], "user": "root", "privileged": True,
    }


def test_quoted_values_stay_whole():
    assert parse_run_options("-e 'MSG=a b; rm -rf /'", where=WHERE) == {"environment": {"MSG": "a b; rm -rf /"}}


def test_env_without_value_comes_from_the_caller(monkeypatch):
    monkeypatch.setenv("FROM_HOST", "yes")
    assert parse_run_options("-e FROM_HOST -e NOT_SET_ANYWHERE_X", where=WHERE) == {"environment": {"FROM_HOST": "yes"}}


@pytest.mark.parametrize("text, message", [
    ("--entrypoint sh", "--entrypoint is not allowed"),
    ("--gpus all", "--gpus is not allowed"),
    ("--frobnicate 3", "unsupported option '--frobnicate'"),
    ("--device=/dev/x ... (abbreviated)", "unsupported option '...'"),
    ("--shm-size", "--shm-size needs a value"),
    ("-e 'unbalanced", "cannot be split"),
    ("--ulimit nofile=many", "bad value 'nofile=many' for --ulimit"),
])
def test_bad_options_name_card_and_flag(text, message):
    with pytest.raises(MadError) as err:
        parse_run_options(text, where=WHERE)
    assert message in str(err.value) and WHERE in str(err.value)


def test_amd_gets_kfd_allocated_render_nodes_and_renumbered_visibility():
    options = assemble_options(make_card(n_gpus="2"), amd_context(), (1, 3))
    assert options["devices"] == ["/dev/kfd:/dev/kfd:rwm", "/dev/dri/renderD136:/dev/dri/renderD136:rwm",
                                  "/dev/dri/renderD152:/dev/dri/renderD152:rwm"]
    assert options["group_add"] == ["video"]
    assert {"SYS_PTRACE", "SYS_ADMIN"} <= set(options["cap_add"])
    assert options["security_opt"] == ["seccomp=unconfined", "apparmor=unconfined"]
    assert options["ipc_mode"] == "host" and options["network_mode"] == "host"
    env = options["environment"]
    assert env["HIP_VISIBLE_DEVICES"] == env["ROCR_VISIBLE_DEVICES"] == "0,1"
    assert env["MAD_ALLOCATED_GPUS"] == "1,3" and "CUDA_VISIBLE_DEVICES" not in env
    assert "device_requests" not in options


def test_nvidia_gets_a_device_request_and_sys_nice():
    context = FakeContext({"gpu_vendor": "NVIDIA", "guest_os": "UBUNTU", "gpu_architecture": "H100"})
    options = assemble_options(make_card(), context, (2, 5))
    (request,) = options["device_requests"]
    assert request["DeviceIDs"] == ["2", "5"] and request["Capabilities"] == [["gpu"]]
    assert "SYS_NICE" in options["cap_add"] and "devices" not in options and "group_add" not in options
    assert options["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert options["environment"]["MAD_SYSTEM_GPU_ARCHITECTURE"] == "H100"


def test_gpus_none_drops_every_device_flag_whatever_the_vendor():
    options = assemble_options(make_card(n_gpus="1"), amd_context(), (0,), no_gpus=True)
    assert not {"devices", "device_requests", "group_add"} & set(options)
    env = options["environment"]
    assert not {"HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"} & set(env)
    assert env["MAD_RUNTIME_NGPUS"] == "1" and env["MAD_GPU_VENDOR"] == "AMD"


def test_vendor_none_with_a_declared_pool_exports_ids_as_given():
    options = assemble_options(make_card(), FakeContext({"gpu_vendor": "NONE"}), (4, 6))
    env = options["environment"]
    assert "devices" not in options and env["CUDA_VISIBLE_DEVICES"] == env["HIP_VISIBLE_DEVICES"] == "4,6"


def test_environment_sources_and_precedence(monkeypatch):
    card = make_card(name="fam/m", n_gpus="2", multiple_results="out.csv", data="squad",
                     env_vars={"SHARED": "card", "CARD_ONLY": "c"},
                     additional_docker_run_options="-e SHARED=option -e OPT_ONLY=o")
    context = amd_context(docker_env_vars={"SHARED": "context"})
    options = assemble_options(card, context, (0, 1), host_env={"MAD_SECRETS_HF": "tok", "OTHER": "x"})
    env = options["environment"]
    assert env["SHARED"] == "context" and env["CARD_ONLY"] == "c" and env["OPT_ONLY"] == "o"
    assert env["MAD_SECRETS_HF"] == "tok" and "OTHER" not in env
    assert env["MAD_MODEL_NAME"] == "fam/m" and env["MAD_OUTPUT_CSV"] == "out.csv" and env["MAD_DATANAME"] == "squad"
    assert (env["MAD_SYSTEM_NGPUS"], env["MAD_RUNTIME_NGPUS"]) == ("4", "2")
    assert (env["MAD_GUEST_OS"], env["MAD_SYSTEM_GPU_ARCHITECTURE"]) == ("UBUNTU", "gfx942")


def test_runtime_gpus_fall_back_to_the_card_then_the_system():
    assert assemble_options(make_card(n_gpus="3"), amd_context(), ())["environment"]["MAD_RUNTIME_NGPUS"] == "3"
    assert assemble_options(make_card(n_gpus="-1"), amd_context(), ())["environment"]["MAD_RUNTIME_NGPUS"] == "4"


def test_mounts_cpus_and_card_options_are_merged_without_duplicates():
    card = make_card(additional_docker_run_options="--cap-add SYS_PTRACE --cap-add SYS_ADMIN -v /a:/b")
    context = amd_context(docker_mounts={"/data": "/mnt/data"}, docker_cpus="0-7")
    options = assemble_options(card, context, ())
    assert options["cap_add"] == ["SYS_PTRACE", "SYS_ADMIN"]
    assert options["volumes"] == ["/mnt/data:/data:rw", "/a:/b"]
    assert options["cpuset_cpus"] == "0-7"


def test_amd_context_on_a_host_without_gpus_gets_env_but_no_devices():
    """--mad-context gpu_vendor AMD + a declared pool on CPU CI: no /dev/kfd, visibility env set."""
    from pytest_madengine.context import build_context
    from pytest_madengine.host import HostFacts

    context = build_context(context_file=None, context_text="{'gpu_vendor': 'AMD'}",
                            host=HostFacts(gpu_vendor="NONE"), gpus_option="0-7")
    options = assemble_options(make_card(), context, (2, 5))
    assert "devices" not in options and "device_requests" not in options
    assert options["environment"]["HIP_VISIBLE_DEVICES"] == "2,5"
    assert options["environment"]["MAD_GPU_VENDOR"] == "AMD"


def test_containers_run_as_root_unless_the_card_says_otherwise():
    assert assemble_options(make_card(), FakeContext({"gpu_vendor": "NONE"}), ())["user"] == "root"
    card = make_card(additional_docker_run_options="-u 1000:1000")
    assert assemble_options(card, FakeContext({"gpu_vendor": "NONE"}), ())["user"] == "1000:1000"
