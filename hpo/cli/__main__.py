"""``python -m hpo.cli``."""

from hpo.cli import main

main()
