"""conftest.py template: adjust the Docker options of every model container.

``options`` are the keyword arguments of the Docker SDK's ``containers.run``/``create``; change
them in place. Keep ``labels``: the plugin finds and removes its containers through them.
"""


def pytest_madengine_docker_run_options(card, context, options):
    # Large shared memory for data loaders, for every model.
    options["shm_size"] = "16g"
    # An extra variable for every model, without touching the models' scripts.
    options.setdefault("environment", {})["NCCL_DEBUG"] = "WARN"
    # A dataset cache mounted read-only, only for models tagged "training".
    if "training" in card.tags:
        options.setdefault("volumes", {})["/data/cache"] = {"bind": "/cache", "mode": "ro"}
    # Unlimited locked memory, as RDMA libraries want.
    from docker.types import Ulimit

    options.setdefault("ulimits", []).append(Ulimit(name="memlock", soft=-1, hard=-1))
