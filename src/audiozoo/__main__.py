"""``python -m audiozoo``: the ``audiozoo`` command line."""

from .cli import main

raise SystemExit(main())
