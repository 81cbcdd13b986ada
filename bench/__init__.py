"""Benchmarks and soak runs (`python bench/run.py`, `python bench/soak.py`); a package so
the tests can import the soak."""
