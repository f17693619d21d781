"""``write_json``, ``write_json_list`` and ``write_findings`` stream the text ``json.dumps(indent=2)`` builds, plus one
newline."""

from __future__ import annotations

import io
import json
import random
import sys
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from refinebot.cli import report
from refinebot.models import Finding, Severity


@pytest.mark.parametrize("pieces_per_write", [1, 7, 65_536])
def test_streamed_json_is_the_text_json_dumps_gives(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pieces_per_write: int
) -> None:
    monkeypatch.setattr(report, "_PIECES_PER_WRITE", pieces_per_write)
    payload = [
        {
            "issue": f"P-{n}",
            "message": 'möglich \u2028 "quoted" \u00e9',
            "score": n / 7,
            "none": None,
            "nested": {"list": [1, 2.5, True, {}], "empty": []},
        }
        for n in range(3000)
    ]
    report.write_json(payload)
    assert capsys.readouterr().out == json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def test_empty_findings_print_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    report.write_json([])
    assert capsys.readouterr().out == "[]\n"


@pytest.mark.parametrize("count", [0, 1, 2, 999, 1000, 2501])
def test_a_list_streamed_item_by_item_is_the_text_json_dumps_gives(
    capsys: pytest.CaptureFixture[str], count: int
) -> None:
    items = [
        {
            "issue": f"P-{n}",
            "message": 'line\nbreak \u00e9 \\ "q"',
            "details": {"candidates": [{"s": n / 3}], "e": {}},
        }
        if n % 3
        else ["plain", n, None, []]
        for n in range(count)
    ]
    report.write_json_list(iter(items))
    assert capsys.readouterr().out == json.dumps(items, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("special", [1e-7, 1e16, 2.0**70, 10**30, -0.0, 5e-324, float("nan"), float("inf")])
def test_numbers_and_control_characters_are_spelled_as_json_dumps_spells_them(
    capsys: pytest.CaptureFixture[str], special: float
) -> None:
    # msgspec spells 1e16 and 1e-7 its own way and refuses NaN: the text must still be the stdlib's.
    items = [{"n": n, "value": special, "text": "\x00\x1f\x7f\t\u2028 ✓"} for n in range(1500)]
    report.write_json_list(iter(items))
    assert capsys.readouterr().out == json.dumps(items, indent=2, ensure_ascii=False) + "\n"


class _Text(str):
    """A str subclass msgspec does not encode itself."""


def _findings(count: int) -> list[Finding]:
    """Findings of every kind of details ``to_json`` handles: plain ones, floats, dates, nested mappings,
    non-string keys, enums, tuples, str subclasses, NaN and huge numbers, interleaved."""
    odd: list[dict[str, Any]] = [
        {"score": 0.1 * 3, "tiny": 1e-7, "big": 1e16},
        {"when": datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "nested": MappingProxyType({"a": (1, 2)})},
        {"keys": {True: 1, None: 2, 3: "x", 1.5: "y"}},
        {"severity": Severity.ERROR, "pair": ("a", Severity.INFO)},
        {"text": _Text("sub"), "list": [_Text("s")]},
        {"nan": float("nan"), "inf": [float("inf")]},
        {"huge": 10**30, "neg": -(2**70)},
    ]
    findings = []
    for n in range(count):
        details: dict[str, Any] = (
            odd[n // 7 % len(odd)] if n % 7 == 3 else {"n": n, "checked": ["a", "b"], "flag": n % 2 == 0}
        )
        findings.append(
            Finding(
                project="P",
                issue=f"P-{n}",
                rule="rule",
                code="RB101",
                severity=Severity.INFO if n % 2 else Severity.ERROR,
                message='line\nbreak \u00e9 \u2028 \\ "q" \x00',
                details=details,
            )
        )
    return findings


@pytest.mark.parametrize("count", [0, 1, 7, 999, 1000, 1001, 2600])
@pytest.mark.parametrize("text_stream", [False, True])
def test_findings_print_as_their_to_json_list_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, count: int, text_stream: bool
) -> None:
    # write_findings encodes rows itself (msgspec for plain details, json for the rest, bytes to the
    # binary layer when it can): the text must be write_json_list's of to_json(), byte for byte.
    findings = _findings(count)
    report.write_json_list(f.to_json() for f in findings)
    expected = capsys.readouterr().out
    assert expected == json.dumps([f.to_json() for f in findings], indent=2, ensure_ascii=False) + "\n"
    if text_stream:
        stream = io.StringIO()  # no binary layer: the text path
        monkeypatch.setattr(sys, "stdout", stream)
        report.write_findings(iter(findings))
        assert stream.getvalue() == expected
    else:
        report.write_findings(iter(findings))
        assert capsys.readouterr().out == expected


def test_a_finding_json_cannot_encode_fails_as_to_json_does() -> None:
    bad = Finding("P", "P-1", "rule", "RB101", Severity.INFO, "m", {"object": object()})
    with pytest.raises(TypeError):
        json.dumps(bad.to_json())
    with pytest.raises(TypeError):
        report.write_findings([bad])


@pytest.mark.parametrize("count", [1, 999, 2600])
@pytest.mark.parametrize("ahead", ["all", "blocks", "shuffled-half", "none"])
@pytest.mark.parametrize("with_nan", [False, True])
def test_rows_rendered_ahead_print_the_same_text(
    capsys: pytest.CaptureFixture[str], count: int, ahead: str, with_nan: bool
) -> None:
    # A scan encodes its issue rules' rows while a child runs the backlog rules; the backlog rules'
    # findings then land between them, so runs of rendered rows alternate with rows encoded at the end.
    # Without NaN each chunk is indented by msgspec (the rendered rows' path); a chunk with a NaN is
    # printed the slow way, from rows built again.
    findings = [f for f in _findings(count) if with_nan or "nan" not in f.details]
    report.write_json_list(f.to_json() for f in findings)
    expected = capsys.readouterr().out
    rendered = report.RenderedRows()
    if ahead == "all":
        rendered.add(findings)
    elif ahead == "blocks":
        rendered.add([f for n, f in enumerate(findings) if n // 5 % 2 == 0])
    elif ahead == "shuffled-half":
        # Rendered in another order than printed: every run of them is one row long.
        rendered.add(random.Random(3).sample(findings, count // 2))
    report.write_findings(iter(findings), rendered)
    assert capsys.readouterr().out == expected
    assert expected == json.dumps([f.to_json() for f in findings], indent=2, ensure_ascii=False) + "\n"
    if ahead == "all":
        assert len(rendered) == len(findings)  # every kind of details above could be encoded ahead


def test_rows_rendered_ahead_are_found_by_identity_and_unencodable_ones_left_for_later() -> None:
    # What cannot be encoded ahead (a lone surrogate, details nested past the recursion limit) is
    # skipped here, never raised: printing decides about it as it did before.
    finding = _findings(1)[0]
    twin = Finding(
        **{k: getattr(finding, k) for k in ("project", "issue", "rule", "code", "severity", "message")}
    )
    surrogate = Finding("P", "P-2", "rule", "RB101", Severity.INFO, "lone \udc80 surrogate")
    rendered = report.RenderedRows()
    rendered.add([finding, surrogate])
    assert rendered.position(finding) == 0
    assert rendered.position(twin) is None  # an equal finding is not that finding
    assert rendered.position(surrogate) is None and len(rendered) == 1
    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    deep = Finding("P", "P-3", "rule", "RB101", Severity.INFO, "deep", {"n": 1.5, "deep": nested})
    rendered.add([deep])
    assert rendered.position(deep) is None and len(rendered) == 1
    assert json.loads(rendered.joined(0, 0)) == finding.to_json()
