"""Entry point for ``python -m refinebot``."""

from refinebot.cli import run

# Guarded: a process started by multiprocessing (spawn, forkserver) may import this module.
if __name__ == "__main__":
    run()
