"""The twisted_lb benchmark (not part of the test run): ``python -m tests.bench.run``.

See docs/performance.md.
"""
