"""Judging model runs and recording their results: perf.csv, JUnit properties, the summary.

Submodules import their heavy libraries (junitparser, rich) only inside the functions that
need them, so importing this package is cheap.
"""
