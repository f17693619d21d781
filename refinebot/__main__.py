"""Entry point for ``python -m refinebot``."""

from refinebot.cli import main

main()
