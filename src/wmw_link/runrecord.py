"""What one command did, for the audit log: party, agreement, files by hash, row counts.

The CLI opens a :class:`RunRecord` for every command; the command (or the library function it
calls) fills it in through :func:`current`. The audit module appends it to the hash-chained
log when the command ends, with the outcome (success, or the refusal reason). Nothing personal
goes in: files are named by path and SHA-256, rows by count.
"""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass, field
from typing import Any

from wmw_link.files import sha256_file


@dataclass
class RunRecord:
    command: str
    party: str | None = None
    role: str | None = None
    agreement: dict[str, Any] | None = None  # {"id", "version", "hash"}
    inputs: dict[str, str] = field(default_factory=dict)  # path -> sha256
    outputs: dict[str, str] = field(default_factory=dict)  # path -> sha256
    rows: dict[str, int] = field(default_factory=dict)
    #: Deliberate overrides of a check (``--accept-older``), each said in words.
    overrides: list[str] = field(default_factory=list)
    #: Other parties' audit heads received inside verified envelopes: party, seq, hash.
    received_heads: list[dict[str, Any]] = field(default_factory=list)
    #: This party's audit head when the command started (seq, hash), for envelopes it seals.
    audit_head: dict[str, Any] | None = None
    #: The party secret that signs this command's audit line as a checkpoint (never logged).
    signer: Any = field(default=None, repr=False)

    def set_agreement(self, agreement: Any) -> None:
        self.agreement = {"id": agreement.id, "version": agreement.version, "hash": agreement.hash}

    def add_input(self, path: str | os.PathLike[str]) -> None:
        self.inputs[os.fspath(path)] = sha256_file(path)

    def add_output(self, path: str | os.PathLike[str]) -> None:
        self.outputs[os.fspath(path)] = sha256_file(path)


_current: contextvars.ContextVar[RunRecord | None] = contextvars.ContextVar("wmw_run", default=None)


def start(command: str) -> contextvars.Token[RunRecord | None]:
    return _current.set(RunRecord(command=command))


def current() -> RunRecord:
    """The record of the command now running (a throwaway one outside the CLI)."""
    rec = _current.get()
    if rec is None:
        rec = RunRecord(command="(library)")
        _current.set(rec)
    return rec


def finish(token: contextvars.Token[RunRecord | None]) -> None:
    _current.reset(token)
