"""Loads the real-infrastructure fixtures (docker_engine, busybox_image, python_image, registry,
slurm_cluster, clean_containers, postgres, mongodb, chromium) for every test under tests/."""

pytest_plugins = ["tests.infra.fixtures", "tests.infra.mongo", "tests.infra.browser"]

# Imported before any in-process pytester run: pytester drops the modules a run imported, and
# SQLAlchemy's compiled extensions cannot be imported twice (the history store uses it).
import alembic.command  # noqa: E402,F401
import sqlalchemy  # noqa: E402,F401
