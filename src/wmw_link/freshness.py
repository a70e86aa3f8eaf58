"""Delivery numbers: an older, validly signed delivery must not replace a newer one.

A signature says who made a file, not that it is the latest: replaying last month's sealed
tokens and manifest would otherwise roll the linkage unit back. So every delivery carries a
number, per dataset, that only grows:

* **controllers** number each tokenise run of a dataset (``tokenise --delivery N``; by default
  the next number of a counter kept beside the row-reference key,
  ``<ref-key>.deliveries.json``, which every run of that controller already reads). The number
  goes into the manifest and, with the manifest's signed ``created_at``, into every sealed
  envelope of that delivery;
* **the TTP** numbers its link runs the same way (series ``link``, counter in its state file)
  and puts the number in the envelopes of its maps and link manifest;
* **recipients** (the TTP, the analysts) keep a state file (``--state``, default
  ``wmw-link-state.json`` beside the audit log's default) of the latest delivery accepted per
  series, with the SHA-256 of each file of it. ``unseal`` refuses an older delivery, and a
  different file under an already accepted number, naming both deliveries (check
  ``freshness``), unless ``--accept-older`` is given, which the audit log records. More files of
  the accepted delivery (the tokens after their manifest) and the same file again pass.

The state file is the recipient's own record: whoever can write it can reset it, as whoever can
write the inbox can put any file there. It stops replays through ``unseal``, and ``link``
checks its inputs against it too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmw_link.errors import ConfigError, VerificationError
from wmw_link.files import write_bytes_atomic

STATE_KIND = "wmw-link/delivery-state"
COUNTER_KIND = "wmw-link/delivery-counter"
DEFAULT_STATE = "wmw-link-state.json"
ENV_VAR = "WMW_LINK_STATE"
#: The series of the TTP's own deliveries (maps and link manifest).
LINK_SERIES = "link"


def default_state_path() -> Path:
    """``$WMW_LINK_STATE``, or ``wmw-link-state.json`` in the current directory."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_STATE)


@dataclass(frozen=True)
class Delivery:
    """A delivery as an envelope or manifest states it."""

    series: str  # the dataset id, or "link" for the TTP's outputs
    number: int
    created_at: str | None = None

    def describe(self) -> str:
        when = f", signed {self.created_at}" if self.created_at else ""
        return f"delivery {self.number} of '{self.series}'{when}"

    def to_json(self) -> dict[str, Any]:
        return {"series": self.series, "number": self.number, "created_at": self.created_at}

    @classmethod
    def from_json(cls, value: Any) -> Delivery | None:
        """The envelope's ``delivery`` block, or None if it has none (or a malformed one)."""
        if not isinstance(value, dict):
            return None
        series, number = value.get("series"), value.get("number")
        created = value.get("created_at")
        if not isinstance(series, str) or not is_count(number):
            return None
        return cls(series, number, created if isinstance(created, str) else None)


def is_count(value: Any) -> bool:
    """A delivery number: an int of 1 or more (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# -- files -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked_json(path: Path, kind: str) -> Iterator[dict[str, Any]]:
    """Read-modify-write a small JSON state file under an exclusive lock; written atomically,
    owner-only, when the body leaves without an error."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise ConfigError(f"{path}: cannot open the delivery state ({type(e).__name__})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = read_json(path, kind)
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            text = json.dumps(data, indent=2, sort_keys=True) + "\n"
            write_bytes_atomic(path, text.encode("utf-8"), mode=0o600)
    finally:
        os.close(fd)


def read_json(path: Path, kind: str) -> dict[str, Any]:
    """A state or counter file (empty if it does not exist yet).

    Raises:
        VerificationError: the file is not one wmw-link wrote (check 'freshness').
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"kind": kind}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerificationError(
            f"{path}: check 'freshness': the delivery state cannot be read ({type(e).__name__}); "
            "restore it from a backup rather than deleting it (deleting it accepts any replay)"
        ) from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise VerificationError(f"{path}: check 'freshness': not a {kind} file")
    return data


# -- controllers: the next delivery number -----------------------------------------------------


def counter_path(ref_key_source: str) -> Path | None:
    """The delivery counter beside a row-reference key file (None for an in-memory key)."""
    if not ref_key_source or ref_key_source.startswith("<"):
        return None
    return Path(ref_key_source + ".deliveries.json")


def last_issued(counter: Path | None, series: str, kind: str = COUNTER_KIND) -> int:
    """The last delivery number recorded as issued for ``series`` (0: none)."""
    if counter is None:
        return 0
    return int((read_json(counter, kind).get("issued") or {}).get(series, 0))


def next_delivery(
    counter: Path | None, series: str, explicit: int | None, kind: str = COUNTER_KIND
) -> int:
    """The number this run's delivery gets: ``explicit``, or one more than the counter's last.

    Raises:
        ConfigError: ``explicit`` is not above the last number issued for this series (the
            recipients would refuse it as older or equal).
    """
    if explicit is not None and explicit < 1:
        raise ConfigError(f"--delivery must be 1 or more, not {explicit}")
    last = last_issued(counter, series, kind)
    if explicit is None:
        return last + 1
    if explicit <= last:
        raise ConfigError(
            f"rule 'freshness': --delivery {explicit} for '{series}' is not above the last "
            f"delivery issued ({last}, in {counter}); recipients would refuse it as older"
        )
    return explicit


def record_issued(counter: Path | None, series: str, number: int, kind: str = COUNTER_KIND) -> None:
    """Remember that delivery ``number`` of ``series`` was made (after the run succeeded).

    The TTP keeps its link-run counter in its state file (``kind=STATE_KIND``).
    """
    if counter is None:
        return
    with _locked_json(counter, kind) as data:
        issued = data.setdefault("issued", {})
        issued[series] = max(int(issued.get(series, 0)), number)


# -- recipients: accept or refuse --------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    """What :func:`check` decided for one file; :func:`commit` records it."""

    delivery: Delivery
    name: str
    sha256: str
    older: bool  # accepted only because of --accept-older


def check(
    state: Path,
    delivery: Delivery | None,
    name: str,
    sha256: str,
    *,
    accept_older: bool = False,
    label: str | None = None,
) -> Acceptance:
    """Refuse a file whose delivery is older than the latest accepted one of its series.

    Args:
        state: the recipient's state file.
        delivery: the delivery the (verified) envelope states; None if it states none.
        name: the file's name; sha256: its plaintext SHA-256.
        accept_older: accept an older delivery (or another file under an accepted number).
        label: how to name the file in a refusal (default ``name``).

    Raises:
        VerificationError: check 'freshness', naming both deliveries.
    """
    label = label or name
    if delivery is None:
        raise VerificationError(
            f"check 'freshness' failed for {label}: it carries no delivery number (sealed by an "
            "older wmw-link, or without the manifest beside it); it cannot be ordered against "
            "earlier deliveries"
        )
    latest = (read_json(state, STATE_KIND).get("accepted") or {}).get(delivery.series)
    if not isinstance(latest, dict):
        return Acceptance(delivery, name, sha256, older=False)
    last = Delivery(delivery.series, int(latest.get("number", 0)), latest.get("created_at"))
    files = latest.get("files") or {}
    problem = None
    if delivery.number < last.number:
        problem = f"it is {delivery.describe()}, older than the accepted {last.describe()}"
    elif delivery.number == last.number and files.get(name, sha256) != sha256:
        problem = (
            f"it is {delivery.describe()}, but a different {name} was already accepted under "
            f"the same number ({last.describe()})"
        )
    if problem is None:
        return Acceptance(delivery, name, sha256, older=False)
    if not accept_older:
        raise VerificationError(
            f"check 'freshness' failed for {label}: {problem}; a replayed or stale delivery is "
            f"refused (state {state}; --accept-older accepts it and the audit log records that)"
        )
    return Acceptance(delivery, name, sha256, older=True)


def commit(state: Path, accepted: list[Acceptance], party: str | None = None) -> None:
    """Record accepted files as the latest delivery of their series (after they were written)."""
    if not accepted:
        return
    with _locked_json(state, STATE_KIND) as data:
        if party is not None:
            data.setdefault("party", party)
        table = data.setdefault("accepted", {})
        for a in accepted:
            cur = table.get(a.delivery.series)
            if not isinstance(cur, dict) or cur.get("number") != a.delivery.number:
                cur = table[a.delivery.series] = {
                    "number": a.delivery.number,
                    "created_at": a.delivery.created_at,
                    "files": {},
                }
            cur["files"][a.name] = a.sha256
            cur["accepted_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def latest(state: Path, series: str) -> int | None:
    """The latest accepted delivery number of a series, or None."""
    entry = (read_json(state, STATE_KIND).get("accepted") or {}).get(series)
    return int(entry["number"]) if isinstance(entry, dict) and "number" in entry else None


def check_inputs(state: Path, files: list[Path]) -> None:
    """Refuse manifests older than the latest delivery the state accepted for their dataset.

    ``link`` reads its inputs from a folder anyone with access can copy files into; this
    stops an old pair put there by hand (the manifest's hash is recorded at unseal).

    Several deliveries of one dataset (``link --inputs`` repeated: a re-link over every
    delivery) are judged by the newest: the earlier ones given with it are its history, not a
    replay in its place.

    Raises:
        VerificationError: rule 'freshness', naming the manifest and both deliveries.
    """
    accepted = read_json(state, STATE_KIND).get("accepted") or {}
    newest: dict[str, tuple[Path, Any]] = {}
    for path in files:
        if not path.name.endswith(".manifest.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            series, number = data["dataset"], data.get("delivery")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a manifest: the input checks refuse it, naming their rule
        if not isinstance(series, str):
            continue
        seen = newest.get(series)
        if seen is not None and not is_count(seen[1]):
            continue  # a manifest without a number is refused below, whatever else is given
        if seen is None or not is_count(number) or number > seen[1]:
            newest[series] = (path, number)
    for series, (path, number) in sorted(newest.items()):
        latest = accepted.get(series)
        if not isinstance(latest, dict):
            continue
        last = Delivery(series, int(latest.get("number", 0)), latest.get("created_at"))
        recorded = (latest.get("files") or {}).get(path.name)
        if not is_count(number) or number < last.number:
            mine = f"delivery {number}" if is_count(number) else "a manifest with no delivery"
            raise VerificationError(
                f"{path}: rule 'freshness': {mine} of '{series}' is older than the accepted "
                f"{last.describe()} (state {state}); link only the latest deliveries"
            )
        if number == last.number and recorded is not None:
            from wmw_link.files import sha256_file

            if sha256_file(path) != recorded:
                raise VerificationError(
                    f"{path}: rule 'freshness': not the manifest accepted as "
                    f"{last.describe()} (its SHA-256 differs; state {state})"
                )
