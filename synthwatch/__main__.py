"""``python -m synthwatch`` runs the CLI."""

from synthwatch.cli import main

raise SystemExit(main())
