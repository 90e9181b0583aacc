"""Package-level customisation: see conftest_templates/ for documented examples."""


def pytest_madengine_docker_run_options(card, context, options):
    # Every container of this package gets a label naming the example hub.
    options.setdefault("labels", {})["example.mad-hub"] = "1"
