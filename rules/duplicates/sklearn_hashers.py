"""scikit-learn's hashers that define the duplicate rule's features, for checks and per-pair code.

``vectors.word_counts`` and ``vectors.char_counts`` compute these hashers' matrices without them
(and ``hashing`` their hash function): importing scikit-learn imports scipy.stats, about a second
of a scan. The tests compare against these objects; ``Vectoriser.shared_terms`` (the per-pair
explanation the batch one in ``explain`` reproduces) uses the analyser. Imports scikit-learn: only
those load it.
"""

from __future__ import annotations

from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer

from rules.duplicates.vectors import CHAR_FEATURES, FLOAT, TOKEN_PATTERN, WORD_FEATURES

WORD_HASHER = HashingVectorizer(
    n_features=WORD_FEATURES,
    ngram_range=(1, 2),
    stop_words="english",
    token_pattern=TOKEN_PATTERN,
    lowercase=False,  # already case-folded
    alternate_sign=False,
    norm=None,
    dtype=FLOAT,
)
CHAR_HASHER = HashingVectorizer(
    n_features=CHAR_FEATURES,
    analyzer="char_wb",
    ngram_range=(4, 4),
    lowercase=False,
    alternate_sign=False,
    norm=None,
    dtype=FLOAT,
)
WORD_ANALYZER = WORD_HASHER.build_analyzer()
TERM_HASHER = FeatureHasher(n_features=WORD_FEATURES, input_type="string", alternate_sign=False)
