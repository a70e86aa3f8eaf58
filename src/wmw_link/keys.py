"""Key files, per-agreement and per-domain subkeys (HKDF-SHA256), and key check values.

A key file is one line of text: ``wmw-link-key-v1:`` followed by the key in lowercase hex
(32 random bytes by default; at least 32 are required), written with mode 0600. Loading refuses
a file that group or others can read, a key shorter than 32 bytes and anything malformed. The
key bytes never appear in ``repr``, messages or logs.

Two kinds of key use the same file format:

* the **linkage key**, shared by every partner of an agreement (``--key``): tokens;
* a controller's **row-reference key**, private to that controller (``--ref-key``): row refs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wmw_link.errors import KeyFileError
from wmw_link.files import write_bytes_atomic

KEY_HEADER = "wmw-link-key-v1:"
KEY_BYTES = 32
MIN_KEY_BYTES = 32
_MAX_FILE_BYTES = 4096
_INFO_PREFIX = "wmw-link/v1"
KEY_CHECK_DOMAIN = "key-check"
KEY_CHECK_LABEL = b"wmw-link key check v1"


class SecretKey:
    """A key loaded from a key file. The bytes are not shown by ``repr`` or ``str``."""

    __slots__ = ("_key", "source")

    def __init__(self, key: bytes, source: str = "<memory>") -> None:
        if len(key) < MIN_KEY_BYTES:
            raise KeyFileError(
                f"{source}: key is {len(key)} bytes; at least {MIN_KEY_BYTES} are required"
            )
        self._key = bytes(key)
        self.source = source

    def __repr__(self) -> str:
        return f"SecretKey(source={self.source!r}, bytes={len(self._key)})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable for worker processes on this machine only (never written anywhere).
        return (SecretKey, (self._key, self.source))

    def derive(self, agreement_id: str, domain: str) -> bytes:
        """The 32-byte subkey for ``domain`` under agreement ``agreement_id``.

        The info string holds the agreement *id*, not its version: a compatible later version
        of the agreement still links with tokens made under an earlier one.
        """
        info = f"{_INFO_PREFIX}|{agreement_id}|{domain}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._key)

    def check_value(self, agreement_id: str = "") -> str:
        """Key check value: HMAC-SHA256 of a fixed label under the agreement's derived key.

        Equal check values prove two parties hold the same key (for that agreement) without
        revealing it. ``agreement_id=""`` gives the check value of the key itself.
        """
        sub = self.derive(agreement_id, KEY_CHECK_DOMAIN)
        return hmac.new(sub, KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:32]


def new_key(
    out: str | os.PathLike[str], *, force: bool = False, nbytes: int = KEY_BYTES
) -> SecretKey:
    """Create a key file of ``nbytes`` random bytes with mode 0600.

    Raises:
        KeyFileError: the file exists (and ``force`` is false) or ``nbytes`` is too small.
    """
    path = Path(out)
    if nbytes < MIN_KEY_BYTES:
        raise KeyFileError(f"{path}: a key needs at least {MIN_KEY_BYTES} bytes")
    if path.exists() and not force:
        raise KeyFileError(f"{path}: file exists; refusing to overwrite a key (use --force)")
    raw = secrets.token_bytes(nbytes)
    write_bytes_atomic(path, (KEY_HEADER + raw.hex() + "\n").encode("ascii"), mode=0o600)
    return SecretKey(raw, str(path))


def load_key(path: str | os.PathLike[str]) -> SecretKey:
    """Load a key file, refusing unsafe permissions, short keys and malformed files.

    Raises:
        KeyFileError: missing, not a regular file, readable by group or others, too large,
            malformed, or shorter than 32 bytes. The message never contains key material.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{p}: key file not found") from None
    except OSError as e:
        raise KeyFileError(f"{p}: cannot read the key file ({type(e).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{p}: not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{p}: key file permissions are {stat.S_IMODE(st.st_mode):04o}; it must be readable "
            "by its owner only (chmod 600)"
        )
    if st.st_size > _MAX_FILE_BYTES:
        raise KeyFileError(f"{p}: too large to be a wmw-link key file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"{p}: cannot read the key file ({type(e).__name__})") from None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"{p}: malformed key file (not a wmw-link key)") from None
    if not text.startswith(KEY_HEADER):
        raise KeyFileError(f"{p}: malformed key file (missing the '{KEY_HEADER}' header)")
    body = text[len(KEY_HEADER) :]
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise KeyFileError(f"{p}: malformed key file (the key is not hexadecimal)") from None
    return SecretKey(raw, str(p))
