"""Pydantic models of the parts every manifest shares (agreement reference, file entry), for
the readers that validate manifests: the TTP's tokens check (:mod:`wmw_link.linkage.verify`)
and the withdrawal lists (:mod:`wmw_link.withdrawals`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class Strict(BaseModel):
    # Unknown keys are ignored (the writers add counts the readers do not need); the keys read
    # here must have exactly these JSON types.
    model_config = ConfigDict(extra="ignore", strict=True)


class AgreementRef(Strict):
    id: StrictStr
    version: StrictInt
    hash: StrictStr


class FileEntry(Strict):
    name: StrictStr
    sha256: StrictStr
    rows: StrictInt = Field(ge=0)


__all__ = ["AgreementRef", "FileEntry", "Strict"]
