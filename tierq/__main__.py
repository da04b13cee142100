"""``python -m tierq`` runs the CLI."""

from .cli import main

main()
