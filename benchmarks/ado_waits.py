"""Measure how long ``refinebot scan`` waits on a broken Azure DevOps server, how often it tries, what it prints.

Cases (issue 9, "Bounded waits on every back end"): a closed port, a server that accepts connections
and never answers (``tests/fakes/silent_server.py``), and the fake organisation answering every
request with 501, 400 or 404 (``tests/fakes/ado_server.py``, Azure DevOps JSON errors), or a plain
server answering every request with one status and a text body, as a proxy would (``501-text``,
``tests/fakes/status_server.py``). Each case runs the real CLI in a fresh
process with a fresh SDK cache; the child counts its TCP connection attempts (a wrapper around
urllib3's ``create_connection``) and the fake counts the requests it answered.

Run from the project root:
``.venv/bin/python -m benchmarks.ado_waits [--timeout 2] [--attempts 2] [--cap 300] [--cases refused,silent,501,400,404,501-text,404-text,503-text]``.
``--cap`` ends a run that takes longer (reported as ">cap").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.counted_scan import counted_scan, print_row
from tests.fakes.ado_server import FakeAzureDevOps, Fault
from tests.fakes.silent_server import SilentServer, closed_port
from tests.fakes.status_server import StatusServer

ROOT = Path(__file__).resolve().parent.parent
PAT = "bench-pat"
TOKEN_ENV = "ADO_WAITS_PAT"


def run_case(
    url: str, timeout: float, attempts: int, cap: float, work: Path
) -> tuple[int | None, float, int, str]:
    """(exit code or None when capped, seconds, TCP connection attempts, stderr) of one scan."""
    config = work / "refinebot.toml"
    config.write_text(
        f"""
[sources.ado]
kind = "azure_devops"
url = "{url}"
token_env = "{TOKEN_ENV}"
timeout_seconds = {timeout}
retry_attempts = {attempts}

[projects.Web]
source = "ado"
""",
        encoding="utf-8",
    )
    return counted_scan(config, work, {TOKEN_ENV: PAT, "AZURE_DEVOPS_CACHE_DIR": str(work / "sdk")}, cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0, help="timeout_seconds in the config")
    parser.add_argument("--attempts", type=int, default=2, help="retry_attempts in the config")
    parser.add_argument("--cap", type=float, default=300.0, help="seconds after which a run is stopped")
    parser.add_argument("--cases", default="refused,silent,501,400,404,501-text,404-text,503-text")
    parser.add_argument("--show", action="store_true", help="print each case's stderr")
    args = parser.parse_args()
    print(f"timeout_seconds={args.timeout} retry_attempts={args.attempts}")
    print(f"{'case':8} {'exit':>5} {'seconds':>8} {'tcp':>4} {'served':>6} {'stderr lines':>12}  first line")
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory(prefix="ado-waits-") as tmp:
            work = Path(tmp)
            served = "-"
            if case == "refused":
                result = run_case(
                    f"http://127.0.0.1:{closed_port()}/org", args.timeout, args.attempts, args.cap, work
                )
            elif case == "silent":
                with SilentServer() as silent:
                    result = run_case(f"{silent.base}/org", args.timeout, args.attempts, args.cap, work)
                    served = str(silent.connections)
            elif case.endswith("-text"):
                with StatusServer(int(case.split("-")[0])) as plain:
                    result = run_case(f"{plain.base}/org", args.timeout, args.attempts, args.cap, work)
                    served = str(plain.count)
            else:
                fake = FakeAzureDevOps(org="org", pat=PAT).start()
                try:
                    fake.add_project("Web")
                    fake.faults.append(Fault("", status=int(case), times=10_000, message=f"status {case}"))
                    result = run_case(fake.url, args.timeout, args.attempts, args.cap, work)
                    served = str(len(fake.requests))
                finally:
                    fake.stop()
        print_row(case, result, served, show=args.show)


if __name__ == "__main__":
    main()
