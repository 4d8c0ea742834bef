"""Cache files that cannot be read are dropped and rebuilt, not fatal.

Every cache of recsys (parsed tables, splits, tokens, text embeddings) holds values that a run
recomputes, to the same values, where an entry is missing. Its files are written atomically, but
a disk that filled up, a copy that was cut short or an edit can still leave one unreadable; a run
that meets one says so, removes it and rebuilds what it held, instead of ending in a parser's
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

# What reading a damaged Parquet or JSON file, or one of another layout, raises (pyarrow's
# ArrowInvalid and json's JSONDecodeError are ValueErrors; a missing column or key is a KeyError,
# a record of other fields a TypeError). OSError is not among them: a disk that cannot be read
# is not a damaged file.
UNREADABLE = (ValueError, KeyError, IndexError, TypeError)


def discard_unreadable(paths: Sequence[Path], error: BaseException) -> None:
    """Warn that the cache files ``paths`` cannot be read (``error``) and remove them, so that
    the run rebuilds what they held."""
    reason = (str(error).strip().splitlines() or [""])[0]
    log.warning("Cannot read the cache %s (%s: %s): removed; this run rebuilds it",
                ", ".join(str(path) for path in paths), type(error).__name__, reason)
    for path in paths:
        path.unlink(missing_ok=True)
