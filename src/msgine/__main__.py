"""``python -m msgine`` runs the command line."""

from msgine.cli import main

main()
