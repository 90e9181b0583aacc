"""conftest.py template: read performance a model prints in its own format.

Return ``(performance, metric)`` as strings, or None to let the default parser
(``performance: <value> <metric>``) and the other hooks try.
"""
import re

THROUGHPUT = re.compile(r"^Throughput:\s*([0-9.]+)\s*requests/s", re.MULTILINE)


def pytest_madengine_parse_performance(card, log_text):
    if "vllm" not in card.tags:
        return None
    match = THROUGHPUT.search(log_text)
    return (match.group(1), "requests_per_second") if match else None
