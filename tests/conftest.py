"""Loads the real-infrastructure fixtures (docker_engine, busybox_image, python_image, registry,
slurm_cluster, clean_containers, postgres, mongodb, chromium) for every test under tests/."""

pytest_plugins = ["tests.infra.fixtures", "tests.infra.mongo", "tests.infra.browser"]
