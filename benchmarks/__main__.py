"""``python -m benchmarks``: run the benchmark suite and print the table."""

from .runner import main

raise SystemExit(main())
