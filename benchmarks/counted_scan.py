"""Run ``refinebot scan`` in a child process with its TCP connection attempts counted (for the waits benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs the CLI with urllib3's create_connection counted (requests, the jira package and msrest all go
# through urllib3); the count goes to the file named in argv[1].
_CHILD = textwrap.dedent(
    """
    import atexit, sys
    import urllib3.util.connection as c
    out, attempts = sys.argv.pop(1), [0]
    original = c.create_connection
    def counted(*a, **k):
        attempts[0] += 1
        return original(*a, **k)
    c.create_connection = counted
    import urllib3.connection
    urllib3.connection.connection.create_connection = counted
    atexit.register(lambda: open(out, "w").write(str(attempts[0])))
    from refinebot.cli import main
    sys.argv[0] = "refinebot"
    sys.exit(main())
    """
)


def counted_scan(
    config: Path, work: Path, extra_env: dict[str, str], cap: float
) -> tuple[int | None, float, int, str]:
    """(exit code or None when capped, seconds, TCP connection attempts, stderr) of one scan of ``config``."""
    counter = work / "attempts.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEBOT_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", **extra_env})
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(counter), "scan", "-c", str(config)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=cap,
            check=False,
        )
        code: int | None = done.returncode
        stderr = done.stderr
    except subprocess.TimeoutExpired as expired:
        code = None
        raw = expired.stderr or b""
        stderr = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    elapsed = time.monotonic() - started
    tries = int(counter.read_text()) if counter.is_file() else -1
    return code, elapsed, tries, stderr


def print_row(case: str, result: tuple[int | None, float, int, str], served: str, *, show: bool) -> None:
    """One line of the waits table: exit code, seconds, TCP attempts, requests served, stderr lines, first line."""
    code, elapsed, tries, stderr = result
    lines = [line for line in stderr.splitlines() if line.strip()]
    shown = ">cap" if code is None else str(code)
    first = lines[0][:110] if lines else ""
    print(f"{case:8} {shown:>5} {elapsed:8.1f} {tries:>4} {served:>6} {len(lines):>12}  {first}")
    if show:
        print(textwrap.indent(stderr.rstrip(), "    | "))
