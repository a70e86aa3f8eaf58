"""Journeys: the partners' payloads joined to the trusted third party's person ids.

The analysis environment receives, per dataset, ``<dataset>.payload.parquet`` (``row_ref`` and
the agreement's analyst payload fields) with its manifest, and the TTP's
``<dataset>.map.parquet`` (``row_ref`` -> ``person_id``). It never sees an identifier, plain or
hashed: token files, and any file with a token column, are refused.

Modules: ``inputs`` (the input contract: file names, token refusal, payload columns,
manifests, the link manifest and map hashes, loading directories), ``sql`` (the SQL that
builds events and persons, and the rules for person characteristics), ``build``
(:func:`build_journeys`, which checks, builds and writes the output).
"""

from __future__ import annotations

from wmw_link.journeys.build import (
    JOURNEYS_FILES,
    JOURNEYS_MANIFEST,
    JourneysResult,
    build_journeys,
)
from wmw_link.journeys.inputs import (
    LINK_MANIFEST,
    LINK_MANIFEST_KIND,
    LOCAL_SUFFIXES,
    MANIFEST_SUFFIX,
    MAP_SUFFIX,
    PAYLOAD_SUFFIX,
    TOKENS_SUFFIX,
    input_paths,
    load_districts,
    require_dir,
)
from wmw_link.journeys.sql import (
    AGE_BANDS,
    END_FIELDS,
    EVENT_TYPES,
    HUB_PREFIX,
    PERSON_COLUMNS,
    PERSON_FIELDS,
    START_FIELDS,
    age_band,
    event_type_of,
)

__all__ = [
    "AGE_BANDS",
    "END_FIELDS",
    "EVENT_TYPES",
    "HUB_PREFIX",
    "JOURNEYS_FILES",
    "JOURNEYS_MANIFEST",
    "LINK_MANIFEST",
    "LINK_MANIFEST_KIND",
    "LOCAL_SUFFIXES",
    "MANIFEST_SUFFIX",
    "MAP_SUFFIX",
    "PAYLOAD_SUFFIX",
    "PERSON_COLUMNS",
    "PERSON_FIELDS",
    "START_FIELDS",
    "TOKENS_SUFFIX",
    "JourneysResult",
    "age_band",
    "build_journeys",
    "event_type_of",
    "input_paths",
    "load_districts",
    "require_dir",
]
