"""The hash-chained audit log: one JSON line per command, each carrying the previous line's hash.

Every ``wmw-link`` command appends one line when it ends::

    {"seq": 7, "time": "...", "command": "tokenise", "party": "dwp", "role": "controller",
     "agreement": {"id", "version", "hash"}, "inputs": [{"path", "sha256"}], "outputs": [...],
     "rows": {...}, "tool_version": "...", "outcome": "ok" | "refused: <rule ...>" | "error: <Type>",
     "prev_hash": "<hash of line 6>", "hash": "<SHA-256 of this line without 'hash'>"}

The first line chains to 64 zeros. :func:`verify` recomputes every line's hash and every link,
so an edited, removed, inserted or reordered line is found and named by its line number.

A hash chain has no key: whoever can write the log can edit a line and recompute every hash
after it. So a command run with a party secret signs its own line (a *checkpoint*): an Ed25519
signature (PyNaCl) by the party's key over the line, which holds ``prev_hash`` and so commits
to every line before it. ``wmw-link audit checkpoint`` signs one on demand. ``verify`` with a
keyring checks every checkpoint and requires one after the last line that records a data flow:
a re-chained, spliced or truncated log then fails without a stored head. What it cannot stop:
the holder of a party key can rewrite its own log and sign it again, and a log cut back exactly
to an earlier checkpoint is a valid log. Against both, every sealed envelope carries the
sender's audit head (seq, hash) under the envelope's signature, and the recipient's log records
it (``received_heads``): the sender's log must still contain that head (``--head``). Keep the
head hash ``audit verify`` prints elsewhere too (a ticket, an email).

Nothing personal goes in: files by path and SHA-256, rows by count, refusals by their message,
which by the project's rules names files, columns, rows and rules, never values.

Appends take an exclusive ``flock`` on the log so concurrent commands cannot interleave or fork
the chain, and write each line with one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError

from wmw_link._version import __version__
from wmw_link.errors import ConfigError, KeyFileError, VerificationError
from wmw_link.runrecord import RunRecord

DEFAULT_LOG = "wmw-link-audit.jsonl"
ENV_VAR = "WMW_LINK_AUDIT_LOG"
GENESIS = "0" * 64
_TAIL_CHUNK = 64 * 1024
#: Domain separation: a checkpoint signature can never be mistaken for an envelope's.
_CHECKPOINT_CONTEXT = b"wmw-link/audit-checkpoint/v1\n"
#: Commands that only read the log: lines they leave after the last checkpoint record no data
#: flow, so ``verify --keyring`` does not ask for a checkpoint after them.
READ_ONLY_COMMANDS = frozenset({"audit verify", "audit show"})


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def line_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of an entry's canonical JSON, leaving out its own ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def default_log_path() -> Path:
    """``$WMW_LINK_AUDIT_LOG``, or ``wmw-link-audit.jsonl`` in the current directory."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_LOG)


def _last_line(fd: int) -> bytes | None:
    """The last complete line of the file open on ``fd`` (without its newline), or None if empty."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if end == 0:
        return None
    buf = b""
    pos = end
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        # Skip the file's trailing newline, then look for the one before the last line.
        idx = buf.rfind(b"\n", 0, len(buf) - 1)
        if idx != -1:
            return buf[idx + 1 :]
    return buf


def _signed_body(entry: dict[str, Any]) -> bytes:
    """What a checkpoint signs: the whole line but its hash and the signature itself."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    body["checkpoint"] = {k: v for k, v in body["checkpoint"].items() if k != "signature"}
    return _CHECKPOINT_CONTEXT + _canonical(body)


def head(log: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The log's last line as ``{"seq", "hash"}`` (None for a missing, empty or damaged log)."""
    try:
        fd = os.open(log, os.O_RDONLY)
    except OSError:
        return None
    try:
        last = _last_line(fd)
    finally:
        os.close(fd)
    try:
        entry = json.loads(last) if last else None
        return {"seq": int(entry["seq"]), "hash": str(entry["hash"])} if entry else None
    except (ValueError, KeyError, TypeError):
        return None


def _entry(record: RunRecord, outcome: str, now: dt.datetime | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if record.overrides:
        extra["overrides"] = list(record.overrides)
    if record.received_heads:
        extra["received_heads"] = list(record.received_heads)
    return {
        **extra,
        "time": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="milliseconds"),
        "command": record.command,
        "party": record.party,
        "role": record.role,
        "agreement": record.agreement,
        "inputs": [{"path": p, "sha256": h} for p, h in sorted(record.inputs.items())],
        "outputs": [{"path": p, "sha256": h} for p, h in sorted(record.outputs.items())],
        "rows": dict(sorted(record.rows.items())),
        "tool_version": __version__,
        "outcome": outcome,
    }


def append(
    log: str | os.PathLike[str],
    record: RunRecord,
    outcome: str,
    now: dt.datetime | None = None,
    signer: Any = None,
) -> dict[str, Any]:
    """Append one command's record to the log, chained to the line before it.

    Args:
        log: the audit log (created with its directory if missing).
        record: what the command did.
        outcome: ``"ok"``, ``"refused: <message>"`` or ``"error: <ExceptionType>"``.
        now: the time to record (tests); default now, UTC.
        signer: a :class:`wmw_link.party_keys.PartySecret`: the line becomes a checkpoint
            signed with its key (default ``record.signer``).

    Returns:
        The entry as written (with ``seq``, ``prev_hash`` and ``hash``).

    Raises:
        VerificationError: the log's last line is damaged, so the chain cannot continue.
        ConfigError: the log cannot be opened or written.
    """
    path = Path(log)
    entry = _entry(record, outcome, now)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as e:
        raise ConfigError(f"{path}: cannot open the audit log ({type(e).__name__})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        if last is None:
            seq, prev = 1, GENESIS
        else:
            try:
                before = json.loads(last)
                seq, prev = int(before["seq"]) + 1, str(before["hash"])
            except (ValueError, KeyError, TypeError):
                raise VerificationError(
                    f"{path}: the last line of the audit log is damaged; run 'wmw-link audit "
                    "verify' on it and start a new log"
                ) from None
        entry = {"seq": seq, **entry, "prev_hash": prev}
        signer = signer if signer is not None else record.signer
        if signer is not None:
            entry["checkpoint"] = {"party": signer.party, "signature": "ed25519"}
            sig = signer.signing_key.sign(_signed_body(entry)).signature
            entry["checkpoint"]["signature"] = sig.hex()
        entry["hash"] = line_hash(entry)
        data = _canonical(entry) + b"\n"
        # One write on an O_APPEND descriptor under the lock: the line lands whole or not at all
        # as far as other wmw-link writers can see.
        written = os.write(fd, data)
        if written != len(data):
            raise ConfigError(
                f"{path}: short write to the audit log ({written} of {len(data)} bytes)"
            )
        os.fsync(fd)
    except OSError as e:
        raise ConfigError(f"{path}: cannot append to the audit log ({type(e).__name__})") from None
    finally:
        os.close(fd)  # closing releases the lock
    return entry


@dataclass(frozen=True)
class VerifyReport:
    """A verified log: how many lines and the hash of the last one (the head to keep elsewhere)."""

    path: Path
    lines: int
    head: str
    checkpoints: int = 0
    last_checkpoint: int | None = None  # line number


def read_entries(log: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parse every line of the log (no verification).

    Raises:
        VerificationError: a line is not a JSON object, naming the line.
    """
    path = Path(log)
    out = []
    for n, raw in enumerate(_lines(path), start=1):
        try:
            entry = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VerificationError(
                f"{path} line {n}: not valid JSON (damaged or edited)"
            ) from None
        if not isinstance(entry, dict):
            raise VerificationError(f"{path} line {n}: not a JSON object")
        out.append(entry)
    return out


def _lines(path: Path) -> Iterator[bytes]:
    """The log's lines without their newlines, streamed (a log may be large)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    except FileNotFoundError:
        raise ConfigError(f"{path}: audit log not found") from None
    with fh:
        for line in fh:
            # An unterminated last line is still checked; it just was never finished.
            yield line.rstrip(b"\r\n")


def _check_checkpoint(entry: dict[str, Any], n: int, keyring: Any) -> str | None:
    """A problem with line ``n``'s checkpoint signature, or None if it verifies."""
    cp = entry.get("checkpoint")
    party, sig = (cp.get("party"), cp.get("signature")) if isinstance(cp, dict) else (None, None)
    if not isinstance(party, str) or not isinstance(sig, str):
        return f"line {n}: a malformed checkpoint (check 'checkpoint')"
    try:
        key = keyring.get(party)
        key.verify_key.verify(_signed_body(entry), bytes.fromhex(sig))
    except KeyFileError:
        return f"line {n}: checkpoint by '{party}', whose key is not in the keyring"
    except (BadSignatureError, ValueError):
        return (
            f"line {n}: checkpoint signature by '{party}' does not verify (check 'checkpoint'): "
            "this line or one before it was rewritten, or it was signed with another key"
        )
    return None


class _Signatures:
    """Checkpoints seen so far, and the last line that needs one after it."""

    def __init__(self, keyring: Any) -> None:
        self.keyring = keyring
        self.count, self.last_flow = 0, 0
        self.last: int | None = None

    def see(self, entry: dict[str, Any], n: int) -> list[str]:
        if "checkpoint" not in entry:
            if entry.get("command") not in READ_ONLY_COMMANDS:
                self.last_flow = n
            return []
        self.count, self.last = self.count + 1, n
        problem = _check_checkpoint(entry, n, self.keyring)
        return [problem] if problem else []

    def finish(self) -> list[str]:
        if self.last is None:
            return [
                "no signed checkpoint in the log (check 'checkpoint'): nothing proves the lines "
                "were not rewritten; run 'wmw-link audit checkpoint --party-secret FILE'"
            ]
        if self.last_flow > self.last:
            return [
                f"line {self.last_flow} comes after the last signed checkpoint (line "
                f"{self.last}) (check 'checkpoint'): lines after it could have been cut or "
                "rewritten unseen; run 'wmw-link audit checkpoint --party-secret FILE'"
            ]
        return []


def verify(
    log: str | os.PathLike[str], expect_head: str | None = None, keyring: Any = None
) -> VerifyReport:
    """Check every line's own hash and its link to the line before; with a keyring, signatures.

    Args:
        log: the audit log.
        expect_head: the head hash recorded earlier; the log must contain it (so lines cut
            from the end are found). The log may have grown since. Compared case-insensitively.
        keyring: a :class:`wmw_link.party_keys.Keyring` (or its directory): every checkpoint
            must verify under its party's key, there must be one, and every line after the
            last one must be from a read-only command (:data:`READ_ONLY_COMMANDS`).

    Returns:
        The number of lines, the current head hash and the checkpoints found.

    Raises:
        VerificationError: listing every broken line by number and what is wrong with it.
    """
    path = Path(log)
    if keyring is not None and not hasattr(keyring, "get"):
        from wmw_link.party_keys import Keyring

        keyring = Keyring(keyring)
    if expect_head is not None:
        expect_head = expect_head.strip().lower()  # hex: 'ABC' and 'abc' are the same head
    problems: list[str] = []
    prev_hash, head_seen, n = GENESIS, False, 0
    expected_seq = 1
    signed = _Signatures(keyring) if keyring is not None else None
    for n, raw in enumerate(_lines(path), start=1):
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            problems.append(f"line {n}: not a JSON object (damaged or edited)")
            prev_hash = hashlib.sha256(raw).hexdigest()  # unknowable; the next link fails too
            expected_seq += 1
            continue
        stated = entry.get("hash")
        seq = entry.get("seq")
        if stated != line_hash(entry):
            problems.append(f"line {n}: its content does not match its hash (the line was edited)")
        if entry.get("prev_hash") != prev_hash:
            if seq != expected_seq:
                problems.append(
                    f"line {n}: has sequence number {seq} where {expected_seq} belongs and does "
                    f"not chain to line {n - 1}: a line was removed, inserted or moved here"
                )
            else:
                problems.append(
                    f"line {n}: does not chain to line {n - 1} (prev_hash differs): line {n - 1} "
                    "was rewritten, or a line was replaced here"
                )
        elif seq != expected_seq:
            problems.append(f"line {n}: has sequence number {seq} where {expected_seq} belongs")
        if signed is not None:
            problems += signed.see(entry, n)
        prev_hash = str(stated)
        head_seen = head_seen or prev_hash == expect_head
        expected_seq = seq + 1 if isinstance(seq, int) else expected_seq + 1
    if expect_head is not None and not head_seen:
        problems.append(
            f"the expected head {expect_head[:16]}... is not in the log: lines were cut from the end "
            "or the log was replaced"
        )
    if signed is not None and n:
        problems += signed.finish()
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise VerificationError(
            f"{path}: audit log verification failed ({len(problems)} problem(s)):\n  "
            + "\n  ".join(shown)
            + more
        )
    return VerifyReport(
        path=path,
        lines=n,
        head=prev_hash,
        checkpoints=signed.count if signed else 0,
        last_checkpoint=signed.last if signed else None,
    )


def summarise_entry(entry: dict[str, Any]) -> str:
    """One readable line for ``audit show``."""
    agreement = entry.get("agreement") or {}
    ag = f"{agreement.get('id')} v{agreement.get('version')}" if agreement else "-"
    who = entry.get("party") or "-"
    if entry.get("role"):
        who += f" ({entry['role']})"
    return (
        f"{entry.get('seq', '?'):>5}  {entry.get('time', '?')}  {entry.get('command', '?'):<18} "
        f"{who:<28} {ag:<18} in={len(entry.get('inputs') or [])} "
        f"out={len(entry.get('outputs') or [])}  {entry.get('outcome', '?')}"
    )
