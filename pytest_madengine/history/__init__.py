"""The results history: an embedded SQLite store of sessions and result rows.

``schema`` (versioned tables and migrations), ``store`` (:class:`HistoryStore`), ``spec``
(the ``--mad-compare`` baseline specification), ``compare`` (a result against its baseline),
``sink`` (:class:`HistorySink`, the result sink that writes the store), ``trends`` (rows as
per-model series on a session axis), ``cli`` and ``dashboard`` (``python -m pytest_madengine
history|report``). Importing this package imports
none of them: each is imported where it is used.
"""
