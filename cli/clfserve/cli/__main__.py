"""``python -m clfserve.cli``: the `clfserve` command (how the service launches a retrain)."""

from clfserve.cli import main

raise SystemExit(main())
