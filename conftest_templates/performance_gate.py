"""conftest.py template: fail a model that performs below a floor; annotate results.

Overriding ``mad_result`` wraps the plugin's fixture of the same name: the model has run and
been judged when your fixture gets the result.
"""
import pytest

from pytest_madengine.records import FAILURE

# Minimum acceptable performance per model (same unit as the model reports).
FLOORS = {"dummy": 40.0, "dummy2/model1": 1000.0}


@pytest.fixture
def mad_result(mad_result, mad_card):
    floor = FLOORS.get(mad_card.name)
    if floor is not None and mad_result.status != FAILURE and mad_result.performance:
        if float(mad_result.performance) < floor:
            mad_result.status = FAILURE
            mad_result.phase = "performance"
            mad_result.reason = f"performance {mad_result.performance} is below the floor {floor}"
            for row in mad_result.rows:
                row["status"] = FAILURE
    return mad_result


def pytest_madengine_process_result(card, result):
    # Tag every perf.csv row with the pipeline that produced it.
    for row in result.rows:
        row["pipeline"] = row.get("pipeline") or "nightly"
