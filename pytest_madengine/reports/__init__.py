"""Reports from results files: HTML page, mail body (``html``), MongoDB upload (``mongo``); the
``report`` / ``database`` commands of ``python -m pytest_madengine`` (``cli``)."""
