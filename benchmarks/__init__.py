"""Studies and pytest-benchmark suites behind docs/BENCHMARKS.md (not installed).

Run from the repository root: ``python -m benchmarks.NAME`` for a study,
``pytest benchmarks/bench_NAME.py --benchmark-enable`` for a suite. They measure the
product (``radlite_edge``); ``llama_cpp_ref`` finds llama.cpp's own tools for them and
for the tests.
"""
