"""``python -m fpttsim`` runs the command line."""

from fpttsim.cli import main

raise SystemExit(main())
