"""``python -m quantplan`` runs the CLI."""

from quantplan.cli import main

main()
