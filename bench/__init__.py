"""
Benchmarks of scaleagent (not tests): C{python -m bench [name ...]
[--clusters N]}, or C{make bench BENCH_ARGS="..."}. They measure and report;
nothing is asserted. See bench/README.md.
"""
