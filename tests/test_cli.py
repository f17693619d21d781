"""End-to-end runs of the real CLI: demo, scan on files, rules, and failure isolation between projects."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rules.registry import build_registry
from tests.cli_process import ROOT, run_cli

DEMO_FINDINGS = [
    ("SHOP-5", "oversized-story"),
    ("SHOP-6", "missing-acceptance-criteria"),
    ("SHOP-7", "missing-estimate"),
    ("SHOP-8", "missing-acceptance-criteria"),
    ("SHOP-8", "missing-description"),
    ("SHOP-9", "blocked-dependency"),
    ("SHOP-13", "stale-item"),
    ("SHOP-14", "missing-acceptance-criteria"),
    ("SHOP-16", "missing-description"),
    ("SHOP-18", "blocked-dependency"),
    ("SHOP-19", "blocked-dependency"),
    ("SHOP-20", "blocked-dependency"),
    ("SHOP-24", "missing-acceptance-criteria"),
    ("SHOP-26", "oversized-story"),
    ("SHOP-29", "missing-acceptance-criteria"),
    ("SHOP-29", "missing-estimate"),
    ("SHOP-29", "stale-item"),
    ("SHOP-32", "blocked-dependency"),
    ("SHOP-36", "missing-acceptance-criteria"),
    ("SHOP-41", "missing-acceptance-criteria"),
    ("SHOP-41", "duplicate-candidate"),
]


def test_demo_table_leads_with_readiness_then_findings_by_issue() -> None:
    result = run_cli(["demo"])
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "SHOP readiness: 5 of the top 10 ready (50%); 22 of 38 open items ready overall (58%)"
    assert lines[1] == "Not ready in the top 10: SHOP-5, SHOP-6, SHOP-7, SHOP-8, SHOP-9"
    assert "Rebuild the whole payment service on the new provider" in result.stdout
    assert "Estimated at 21 points, over the limit of 8: split it" in result.stdout
    # The advice is said once per rule; later findings of the rule keep only what is wrong.
    assert result.stdout.count("estimate it in refinement") == 1
    assert "Story has no story-point estimate (as above)" in result.stdout
    assert result.stdout.index("SHOP-5 ") < result.stdout.index("SHOP-41 ")  # rank order


def test_table_limit_and_report_json(tmp_path: Path) -> None:
    limited = run_cli(["demo", "--limit", "2"])
    assert limited.code == 0
    assert "... and 15 more issues with findings: use --format json or --limit 0" in limited.stdout
    assert "SHOP-7 " not in limited.stdout.split("SHOP refinement agenda")[0]  # the agenda preview follows
    report = run_cli(["demo", "--format", "report-json"])
    assert report.code == 0, report.stderr
    data = json.loads(report.stdout)
    (project,) = data["projects"]
    assert project == {
        "project": "SHOP",
        "ok": True,
        "error": None,
        "issues": 41,
        "ready": 22,
        "top_n": 10,
        "ready_in_top_n": 5,
        "skipped": [],
        "rule_failures": [],
    }
    first = data["findings"][0]
    assert first["issue"] == "SHOP-5"
    assert first["title"] == "Rebuild the whole payment service on the new provider"
    assert first["url"] == "https://shop-demo.atlassian.net/browse/SHOP-5"


def test_report_json_leaves_a_trace_of_failed_projects(tmp_path: Path) -> None:
    config = _config_with_broken_sources(tmp_path)
    result = run_cli(["scan", "-c", str(config), "--format", "report-json"])
    assert result.code == 2
    projects = {p["project"]: p for p in json.loads(result.stdout)["projects"]}
    assert projects["SHOP"]["ok"] is True
    assert projects["GONE"]["ok"] is False and "nowhere.json" in projects["GONE"]["error"]
    assert projects["PAY"]["issues"] == 0


def test_demo_json_exact_findings_and_shape() -> None:
    result = run_cli(["demo", "--format", "json"])
    assert result.code == 0, result.stderr
    findings = json.loads(result.stdout)
    assert [(f["issue"], f["rule"]) for f in findings] == DEMO_FINDINGS
    assert all(
        set(f) == {"project", "issue", "rule", "code", "severity", "message", "details"} for f in findings
    )
    by_key = {(f["issue"], f["rule"]): f for f in findings}
    assert by_key[("SHOP-5", "oversized-story")]["details"] == {"points": 21.0, "max_points": 8.0}
    assert by_key[("SHOP-9", "blocked-dependency")]["details"] == {"blocked_by": ["SHOP-10"]}
    assert by_key[("SHOP-18", "blocked-dependency")]["details"]["cycle"] == ["SHOP-18", "SHOP-19", "SHOP-20"]
    assert by_key[("SHOP-6", "missing-acceptance-criteria")]["code"] == "RB101"
    assert by_key[("SHOP-6", "missing-acceptance-criteria")]["severity"] == "error"
    # every shipped rule fires at least once in the demo
    listed = run_cli(["rules"]).stdout
    builtin = set(build_registry(plugins=False).names())
    assert builtin <= {rule for _, rule in DEMO_FINDINGS}
    assert all(name in listed for name in builtin)


def test_rules_list_and_explain() -> None:
    listed = run_cli(["rules"])
    assert listed.code == 0
    assert "RB201" in listed.stdout and "oversized-story" in listed.stdout
    assert "Stories over the point limit should be split" in listed.stdout
    explained = run_cli(["rules", "oversized-story"])
    assert explained.code == 0
    assert "RB201 oversized-story" in explained.stdout
    assert "max_points" in explained.stdout and "8" in explained.stdout
    by_code = run_cli(["rules", "rb101"])
    assert "missing-acceptance-criteria" in by_code.stdout
    missing = run_cli(["rules", "no-such-rule"])
    assert missing.code == 1 and "no rule named 'no-such-rule'" in missing.stderr


def _write_project_files(tmp_path: Path) -> Path:
    (tmp_path / "good.json").write_text(
        json.dumps(
            {
                "issues": [
                    {
                        "key": "GOOD-1",
                        "fields": {
                            "summary": "Big story",
                            "issuetype": {"name": "Story"},
                            "status": {"name": "To Do", "statusCategory": {"key": "new"}},
                            "description": "h3. Acceptance criteria\n* it is done when it is done, really",
                            "customfield_10016": 20,
                        },
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "broken.json").write_text(
        '{"issues": [{"key": "BAD-1", "fields": {"summary": "x", "customfield_10016": "huge"}}]}'
    )
    config = tmp_path / "refinebot.toml"
    config.write_text(
        textwrap.dedent(
            """
            [sources.good]
            kind = "file"
            path = "good.json"
            [sources.broken]
            kind = "file"
            path = "broken.json"
            [projects.BAD]
            source = "broken"
            [projects.GOOD]
            source = "good"
            [projects.GOOD.rules]
            oversized-story = { max_points = 13 }
            """
        ),
        encoding="utf-8",
    )
    return config


def test_scan_one_failing_project_does_not_stop_the_others(tmp_path: Path) -> None:
    config = _write_project_files(tmp_path)
    result = run_cli(["scan", "--config", str(config), "--format", "json"])
    assert result.code == 2
    findings = json.loads(result.stdout)
    assert [(f["project"], f["issue"], f["rule"]) for f in findings] == [
        ("GOOD", "GOOD-1", "oversized-story")
    ]
    assert findings[0]["details"] == {"points": 20.0, "max_points": 13.0}
    assert "project BAD failed:" in result.stderr
    assert "broken.json: record BAD-1: field 'story points': not a number: 'huge'" in result.stderr


def test_scan_selected_project_and_fail_on(tmp_path: Path) -> None:
    config = _write_project_files(tmp_path)
    ok = run_cli(["scan", "-c", str(config), "-p", "GOOD"])
    assert ok.code == 0 and "GOOD-1" in ok.stdout
    failing = run_cli(["scan", "-c", str(config), "-p", "GOOD", "--fail-on", "warning"])
    assert failing.code == 1
    unknown = run_cli(["scan", "-c", str(config), "-p", "NOPE"])
    assert unknown.code == 1 and "unknown project(s) NOPE" in unknown.stderr


def test_scan_reads_config_from_env_and_reports_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "refinebot.toml"
    config.write_text("[projects.X]\nsource = 'missing'\n")
    result = run_cli(["scan"], env={"REFINEBOT_CONFIG": str(config)})
    assert result.code == 1
    assert f"{config}: projects.X.source: unknown source 'missing' (sources: none defined)" in result.stderr


def test_example_config_scans_the_bundled_backlog(tmp_path: Path) -> None:
    # A copy beside its own database: the example's relative database_url would put one in the checkout.
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    backlog = ROOT / "refinebot" / "demo" / "backlog.json"
    assert 'path = "refinebot/demo/backlog.json"' in example
    config = tmp_path / "refinebot.toml"
    config.write_text(example.replace('path = "refinebot/demo/backlog.json"', f'path = "{backlog}"'), "utf-8")
    result = run_cli(["scan", "--config", str(config), "--format", "json", "--now", "2026-11-20"])
    assert result.code == 0, result.stderr
    rules = {f["rule"] for f in json.loads(result.stdout)}
    assert "stale-item" not in rules  # disabled for SHOP in the example
    assert "oversized-story" in rules


def test_brackets_in_user_data_are_printed_not_interpreted(tmp_path: Path) -> None:
    config = tmp_path / "refinebot.toml"
    config.write_text('[projects."a[/b]"]\nsource = "nosuch"\n')
    result = run_cli(["config", "check", "-c", str(config)])
    assert result.code == 1
    assert "projects.a[/b].source: unknown source 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "b.json").write_text(
        json.dumps(
            {
                "issues": [
                    {
                        "key": "P-1",
                        "fields": {
                            "summary": "[dev] [/x] tags",
                            "customfield_10016": 40,
                            "project": {"key": "P"},
                        },
                    }
                ]
            }
        )
    )
    config.write_text('[sources.f]\nkind = "file"\npath = "b.json"\n[projects.P]\nsource = "f"\n')
    result = run_cli(["scan", "-c", str(config)])
    assert result.code == 0, result.stderr
    assert "[dev] [/x] tags" in result.stdout


def _config_with_broken_sources(tmp_path: Path) -> Path:
    demo = ROOT / "refinebot" / "demo" / "backlog.json"
    config = tmp_path / "refinebot.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [sources.demo]
            kind = "file"
            path = "{demo}"
            [sources.gone]
            kind = "file"
            path = "nowhere.json"
            [sources.jira]
            kind = "jira"
            url = "http://127.0.0.1:9"
            token_env = "REFINEBOT_TEST_UNSET_TOKEN"
            [projects.SHOP]
            source = "demo"
            [projects.GONE]
            source = "gone"
            [projects.PAY]
            source = "jira"
            """
        ),
        encoding="utf-8",
    )
    return config


def test_a_broken_source_fails_only_its_projects(tmp_path: Path) -> None:
    config = _config_with_broken_sources(tmp_path)
    result = run_cli(["scan", "-c", str(config), "--format", "json"], env={"REFINEBOT_TEST_UNSET_TOKEN": ""})
    assert result.code == 2
    assert {f["project"] for f in json.loads(result.stdout)} == {"SHOP"}
    assert "project GONE failed:" in result.stderr and "nowhere.json" in result.stderr
    assert "project PAY failed:" in result.stderr and "REFINEBOT_TEST_UNSET_TOKEN is not set" in result.stderr
    # Each failure once: no log line repeating what the CLI prints.
    assert result.stderr.count("nowhere.json") == 1
    assert result.stderr.count("REFINEBOT_TEST_UNSET_TOKEN is not set") == 1


def test_a_broken_source_does_not_block_another_project(tmp_path: Path) -> None:
    config = _config_with_broken_sources(tmp_path)
    result = run_cli(["scan", "-c", str(config), "-p", "SHOP", "--format", "json"])
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)


def test_config_check_still_reports_every_source_problem(tmp_path: Path) -> None:
    config = _config_with_broken_sources(tmp_path)
    result = run_cli(["config", "check", "-c", str(config)])
    assert result.code == 1
    assert f"{config}: sources.gone.path: file not found" in result.stderr
    assert (
        f"{config}: sources.jira.token_env: environment variable REFINEBOT_TEST_UNSET_TOKEN is not set"
        in result.stderr
    )


def test_a_config_without_projects_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "refinebot.toml"
    config.write_text('[sources.demo]\nkind = "file"\npath = "x.json"\n')
    for args in (["scan", "-c", str(config)], ["config", "check", "-c", str(config)]):
        result = run_cli(args)
        assert result.code == 1
        assert f"{config}: projects: no projects configured" in result.stderr


def test_newcomer_basics(tmp_path: Path) -> None:
    version = run_cli(["--version"])
    assert version.code == 0 and version.stdout.strip() == "refinebot 0.1.0"
    short_help = run_cli(["scan", "-h"])
    assert short_help.code == 0
    assert "<bool>" not in short_help.stdout and "<list" not in short_help.stdout
    assert "-p, --project KEY" in short_help.stdout
    bad_level = run_cli(["rules"], env={"REFINEBOT_LOG_LEVEL": "loud"})
    assert bad_level.code == 1 and "REFINEBOT_LOG_LEVEL='LOUD' is not a log level" in bad_level.stderr
    assert "Traceback" not in bad_level.stderr
    missing = run_cli(["config", "check", "-c", str(tmp_path / "none.toml")], cwd=tmp_path)
    assert missing.code == 1 and "refinebot config init" in missing.stderr
    explained = run_cli(["rules", "missing-description"])
    assert "``" not in explained.stdout
    assert all(
        len(line) <= 80
        for line in run_cli(["rules", "duplicate-candidate"], env={"COLUMNS": "80"}).stdout.splitlines()
    )


def test_config_init_writes_a_starter_that_scans_at_once(tmp_path: Path) -> None:
    written = run_cli(["config", "init"], cwd=tmp_path)
    assert written.code == 0, written.stderr
    config = tmp_path / "refinebot.toml"
    assert config.read_text(encoding="utf-8").startswith("# refinebot configuration example")
    again = run_cli(["config", "init"], cwd=tmp_path)
    assert again.code == 1 and "exists; pass --force" in again.stderr
    check = run_cli(["config", "check"], cwd=tmp_path)
    assert check.code == 0, check.stderr
    assert "(4 sources, projects: SHOP)" in check.stdout
    scan = run_cli(["scan", "--format", "json", "--now", "2026-11-20"], cwd=tmp_path)
    assert scan.code == 0, scan.stderr
    assert json.loads(scan.stdout)


def test_one_source_is_singular(tmp_path: Path) -> None:
    config = tmp_path / "refinebot.toml"
    demo = ROOT / "refinebot" / "demo" / "backlog.json"
    config.write_text(f'[sources.demo]\nkind = "file"\npath = "{demo}"\n[projects.SHOP]\nsource = "demo"\n')
    result = run_cli(["config", "check", "-c", str(config)])
    assert result.code == 0 and "(1 source, projects: SHOP)" in result.stdout


def test_ctrl_c_prints_interrupted(tmp_path: Path) -> None:
    # A Jira source on a port that accepts the connection and never answers keeps the scan waiting.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(60)
    port = listener.getsockname()[1]
    slow = tmp_path / "slow.toml"
    slow.write_text(
        f'[sources.j]\nkind = "jira"\nurl = "http://127.0.0.1:{port}"\ntoken_env = "T"\n'
        f'timeout_seconds = 60\n[projects.P]\nsource = "j"\n'
    )
    env = {**os.environ, "T": "secret-token", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "refinebot", "scan", "-c", str(slow)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        connection, _ = listener.accept()  # the scan is now waiting on the silent server
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        connection.close()
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().endswith("interrupted")
    assert "Traceback" not in stderr


DEMO_CONFIG = ROOT / "refinebot" / "demo" / "config.toml"
DEMO_NOW = "2026-11-20T09:00:00+00:00"


def test_demo_ends_with_the_agenda_preview() -> None:
    result = run_cli(["demo"])
    assert result.code == 0, result.stderr
    preview = result.stdout[result.stdout.index("SHOP refinement agenda, 2026-W47") :]
    assert "1. SHOP-5  Rebuild the whole payment service on the new provider" in preview
    assert "   5 pts · ~5 min · blocked by SHOP-10 (In Progress)" in preview
    assert "and 10 more not-ready items in the backlog" in preview


def test_agenda_json_contract() -> None:
    result = run_cli(["agenda", "--config", str(DEMO_CONFIG), "--format", "json", "--now", DEMO_NOW])
    assert result.code == 0, result.stderr
    (agenda,) = json.loads(result.stdout)
    assert set(agenda) == {"project", "cycle", "readiness", "items", "more"}
    assert agenda["readiness"] == {"ready": 5, "top_n": 10, "share": 0.5, "previous_share": None}
    assert [item["issue"] for item in agenda["items"]] == [
        "SHOP-5",
        "SHOP-6",
        "SHOP-7",
        "SHOP-8",
        "SHOP-9",
        "SHOP-14",
    ]
    assert set(agenda["items"][0]) == {"issue", "title", "url", "points", "minutes", "reasons"}
    assert agenda["items"][0]["reasons"] == ["21 points: split it"]
    assert agenda["more"] == 10


def test_agenda_blocks_is_the_slack_payload_and_text_is_the_preview() -> None:
    blocks = run_cli(
        ["agenda", "-c", str(DEMO_CONFIG), "--format", "blocks", "--now", DEMO_NOW, "-p", "SHOP"]
    )
    assert blocks.code == 0, blocks.stderr
    payload = json.loads(blocks.stdout)
    assert set(payload) == {"text", "blocks"}
    assert payload["blocks"][0]["type"] == "header"
    text = run_cli(["agenda", "-c", str(DEMO_CONFIG), "--now", DEMO_NOW])
    assert text.stdout.startswith("SHOP refinement agenda, 2026-W47: 6 items, about 35 of 60 minutes\n")
    unknown = run_cli(["agenda", "-c", str(DEMO_CONFIG), "-p", "NOPE"])
    assert unknown.code == 1
    assert "unknown project(s) NOPE" in unknown.stderr


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "refinebot", "demo", "--limit", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # read one line, then go away as `head -1` would
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the repository root, its output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )


def test_the_entry_point_ends_at_once_yet_runs_exit_handlers_and_prints_everything(tmp_path: Path) -> None:
    # ``run`` (the console script, ``python -m refinebot``) leaves the objects a command kept to
    # the OS (os._exit), after the exit handlers and both streams are flushed.
    marker = tmp_path / "handler-ran"
    freed = tmp_path / "freed-at-teardown"
    script = textwrap.dedent(
        f"""
        import atexit, sys
        from pathlib import Path
        atexit.register(lambda: Path({str(marker)!r}).write_text("yes"))
        class Witness:  # freed by the interpreter's teardown, which run() skips
            def __del__(self):
                Path({str(freed)!r}).write_text("freed")
        witness = Witness()
        sys.argv = ["refinebot", *sys.argv[1:]]
        from refinebot.cli import run
        run()
        """
    )
    proc = _python("-c", script, "demo", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "yes"
    assert not freed.exists()  # the process ended without tearing down
    findings = json.loads(proc.stdout)  # and still printed everything
    assert proc.stdout.endswith("]\n") and len(findings) > 10
    # The witness does report a teardown: with plain main() the interpreter frees it.
    proc = _python(
        "-c",
        script.replace("from refinebot.cli import run\nrun()", "from refinebot.cli import main\nmain()"),
        "demo",
        "--format",
        "json",
    )
    assert freed.read_text() == "freed"


def test_the_entry_point_lets_a_working_thread_finish(tmp_path: Path) -> None:
    # A thread still working when the command returns finishes first (the usual exit joins it).
    finishing = tmp_path / "thread-finished"
    threaded = textwrap.dedent(
        f"""
        import threading, time
        from pathlib import Path
        import refinebot.cli as cli
        def command():
            def work():
                time.sleep(0.5)
                Path({str(finishing)!r}).write_text("done")
            threading.Thread(target=work).start()
        cli.main = command
        cli.run()
        """
    )
    proc = _python("-c", threaded)
    assert proc.returncode == 0, proc.stderr
    assert finishing.read_text() == "done"


def test_the_entry_point_under_cprofile_exits_as_usual(tmp_path: Path) -> None:
    # cProfile writes its file once the module returns: the fast exit would lose it.
    profile = tmp_path / "demo.prof"
    proc = _python("-m", "cProfile", "-o", str(profile), "-m", "refinebot", "demo", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert profile.stat().st_size > 0 and json.loads(proc.stdout)


def test_the_entry_point_prints_a_sys_exit_message_and_exits_1() -> None:
    failing = "import sys\nimport refinebot.cli as c\nc.main = lambda: sys.exit('no way')\nc.run()"
    proc = _python("-c", failing)
    assert (proc.returncode, proc.stderr) == (1, "no way\n")


def test_only_the_entry_point_keeps_objects_until_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from refinebot.cli import console

    monkeypatch.setattr(console, "_KEPT", [])
    console.keep_until_exit(["kept?"])
    assert console._KEPT == []  # in a process that goes on (this one), nothing is kept
    monkeypatch.setattr(console, "_EXIT_FREES_NOTHING", [False])
    console.exit_frees_nothing()  # what run() says first
    console.keep_until_exit(["kept"])
    assert console._KEPT == [["kept"]]


def test_the_entry_point_exits_0_when_the_command_closed_stdout() -> None:
    # Nothing left to flush is no error, as at the interpreter's own exit.
    closing = "import sys\nimport refinebot.cli as c\nc.main = lambda: sys.stdout.close()\nc.run()"
    proc = _python("-c", closing)
    assert (proc.returncode, proc.stderr) == (0, "")
