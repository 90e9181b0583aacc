"""The results history: sessions and result rows in an SQLite file or a PostgreSQL database.

``backend`` (the location by URL), ``schema`` (tables; Alembic ``migrations``), ``store``
(:class:`HistoryStore`), ``importer`` (perf.csv files as sessions), ``changepoint`` and
``changes`` (change points of a model's series), ``spec``
(the ``--mad-compare`` baseline specification), ``compare`` (a result against its baseline),
``sink`` (:class:`HistorySink`, the result sink that writes the store), ``trends`` (rows as
per-model series on a session axis), ``cli`` and ``dashboard`` (``python -m pytest_madengine
history|report``). Importing this package imports
none of them: each is imported where it is used.
"""
