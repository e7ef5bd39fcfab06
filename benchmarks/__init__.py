"""audiozoo benchmarks: speed and memory against the upstream implementations.

Run ``python -m benchmarks`` (or ``nox -s bench``, which installs the upstream peers) from the
repository root; ``python -m benchmarks --help`` lists the options. The table and the command that
produced it are in ``docs/benchmarks.md``.
"""
