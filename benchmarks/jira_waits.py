"""Measure how long ``refinebot scan`` waits on a broken Jira server, how often it tries, what it prints.

Cases (issue 9, "Bounded waits on every back end"): a closed port, a server that accepts connections
and never answers (``tests/fakes/silent_server.py``), the fake Jira answering every request with 501,
400 or 404 (``tests/fakes/jira_server.py``, Jira JSON errors), or a plain server answering every
request with one status and a text body, as a proxy or gateway would (``501-text``, ``404-text``,
``503-text``; ``tests/fakes/status_server.py``). Each case runs the real CLI in a fresh process; the
child counts its TCP connection attempts (a wrapper around urllib3's ``create_connection``) and the
fake counts the requests it answered (``served``).

Run from the project root:
``.venv/bin/python -m benchmarks.jira_waits [--timeout 2] [--attempts 2] [--cap 300] [--dc]
[--cases refused,silent,501,400,404,501-text,404-text,503-text] [--show]``.
``--dc`` points the fake cases at a Data Center site instead of Cloud; ``--cap`` ends a run that takes
longer (reported as ">cap").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.counted_scan import counted_scan, print_row
from tests.fakes.jira_server import FakeJiraServer
from tests.fakes.silent_server import SilentServer, closed_port
from tests.fakes.status_server import StatusServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "JIRA_WAITS_TOKEN"
EMAIL = "bot@example.com"


def run_case(
    url: str, token: str, *, email: str | None, timeout: float, attempts: int, cap: float, work: Path
) -> tuple[int | None, float, int, str]:
    """(exit code or None when capped, seconds, TCP connection attempts, stderr) of one scan."""
    config = work / "refinebot.toml"
    email_line = f'email = "{email}"' if email else ""
    config.write_text(
        f"""
[sources.jira]
kind = "jira"
url = "{url}"
{email_line}
token_env = "{TOKEN_ENV}"
timeout_seconds = {timeout}
retry_attempts = {attempts}

[projects.SHOP]
source = "jira"
""",
        encoding="utf-8",
    )
    return counted_scan(config, work, {TOKEN_ENV: token}, cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0, help="timeout_seconds in the config")
    parser.add_argument("--attempts", type=int, default=2, help="retry_attempts in the config")
    parser.add_argument("--cap", type=float, default=300.0, help="seconds after which a run is stopped")
    parser.add_argument("--dc", action="store_true", help="a Data Center site for the fake-Jira cases")
    parser.add_argument("--cases", default="refused,silent,501,400,404,501-text,404-text,503-text")
    parser.add_argument("--show", action="store_true", help="print each case's stderr")
    args = parser.parse_args()
    email = None if args.dc else EMAIL
    print(f"timeout_seconds={args.timeout} retry_attempts={args.attempts} {'dc' if args.dc else 'cloud'}")
    print(f"{'case':8} {'exit':>5} {'seconds':>8} {'tcp':>4} {'served':>6} {'stderr lines':>12}  first line")
    bounds = {"timeout": args.timeout, "attempts": args.attempts, "cap": args.cap}
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory(prefix="jira-waits-") as tmp:
            work = Path(tmp)
            served = "-"
            if case == "refused":
                url = f"http://127.0.0.1:{closed_port()}"
                result = run_case(url, "token", email=email, work=work, **bounds)
            elif case == "silent":
                with SilentServer() as silent:
                    result = run_case(silent.base, "token", email=email, work=work, **bounds)
                    served = str(silent.connections)
            elif case.endswith("-text"):
                with StatusServer(int(case.split("-")[0])) as plain:
                    result = run_case(plain.base, "token", email=email, work=work, **bounds)
                    served = str(plain.count)
            else:
                fake = FakeJiraServer().start()
                try:
                    site = fake.new_site(cloud=not args.dc)
                    for method in ("GET", "POST", "PUT"):
                        site.fail(method, "", int(case), times=10_000)
                    token = site.token if site.cloud else site.pat
                    result = run_case(site.url, token, email=email, work=work, **bounds)
                    served = str(len(site.log))
                finally:
                    fake.stop()
        print_row(case, result, served, show=args.show)


if __name__ == "__main__":
    main()
