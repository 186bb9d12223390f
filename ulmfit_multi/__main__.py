"""`python -m ulmfit_multi` runs the CLI."""

from .cli import main

main()
