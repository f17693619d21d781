"""``write_json`` streams the same text ``json.dumps(indent=2)`` builds, plus one newline."""

from __future__ import annotations

import json

import pytest

from refinebot.cli import report


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
