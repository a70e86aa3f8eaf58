"""Controller-side tokenisation (``wmw-link tokenise``).

``tokenise(agreement, dataset_id, input, key, ref_key, out_dir)`` turns one extract into
``<dataset>.tokens.parquet`` (for the trusted third party), ``.payload.parquet`` (for the
analysts), ``.manifest.json``, and the local ``.rejects.parquet`` and ``.crosswalk.parquet``.
The token columns are defined in :mod:`wmw_link.token_schema` and ``docs/token-schema.md``.
"""

from __future__ import annotations

from wmw_link.tokenise.checks import DEFAULT_MAX_INVALID_SHARE
from wmw_link.tokenise.run import DEFAULT_BATCH_ROWS, DEFAULT_WORKERS, TokeniseResult, tokenise

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MAX_INVALID_SHARE",
    "DEFAULT_WORKERS",
    "TokeniseResult",
    "tokenise",
]
