"""Entry point for ``python -m refinebot``."""

from refinebot.cli import run

run()
