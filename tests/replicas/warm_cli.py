"""Run the real ``refinebot`` CLI in processes forked from one parent that imported it once.

The kill-at-each-step matrix runs some forty CLI processes; a ``python -m refinebot`` spends about a
second of CPU importing before it does anything, so each run here is ``os.fork()`` of a warm, single-threaded
parent (``python -m tests.replicas.warm_cli``) instead. Each child is a process of its own: its own
environment, stdout and stderr (files), database connections, and a real SIGKILL from the fault hook, reported
like ``subprocess`` does (exit code -9). The parent runs one child at a time, on request over a pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.cli_process import ROOT, CliResult, cli_env


class WarmCli:
    """The warm parent, started once; ``run`` forks one CLI run and waits for it."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._runs = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.replicas.warm_cli"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            # What Rich reads at import (width, colour) is what run_cli gives; one BLAS thread, so the
            # parent stays single-threaded where it can (it forks).
            env=cli_env({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}),
            cwd=ROOT,
        )

    def run(self, args: Sequence[str], *, env: dict[str, str] | None = None) -> CliResult:
        """``refinebot ARGS`` in a forked child with ``cli_env(env)``, as ``run_cli`` would run it."""
        self._runs += 1
        out, err = self._folder / f"run{self._runs}.out", self._folder / f"run{self._runs}.err"
        job = {"args": list(args), "env": cli_env(env), "out": str(out), "err": str(err)}
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(job) + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the warm CLI parent died (exit {self._proc.wait()})")
        code = int(json.loads(answer)["code"])
        return CliResult(code, out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8"))

    def close(self) -> None:
        """End the parent (its stdin closes; it exits)."""
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _child(job: dict[str, Any], main: Any) -> None:
    """In the forked child: become the CLI run the job describes, then exit with its code."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(job["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, job["out"]), (2, job["err"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        main(job["args"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The parent: import the CLI and what a digest run imports, then fork one child per request line."""
    from refinebot.cli import main
    from refinebot.digest import DigestCycle  # noqa: F401  (imported here so each child need not)
    from rules.duplicates import ranking  # noqa: F401  (scikit-learn and scipy: the slowest import)

    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(job, main)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
