"""One exception tree for wmw-link.

Every error a user can cause derives from :class:`WmwLinkError`; the CLI turns it into a
one-line message and a non-zero exit, never a traceback. Messages locate a problem (file,
column, row, rule) and never repeat the personal data that caused it.
"""

from __future__ import annotations


class WmwLinkError(Exception):
    """Base class of every error wmw-link raises on purpose."""


class ConfigError(WmwLinkError):
    """A configuration, argument or environment problem."""


class AgreementError(WmwLinkError):
    """An agreement file is invalid, or an action breaks one of its rules."""


class PolicyError(AgreementError):
    """An action the agreement does not allow (wrong role, party, field, dates, version)."""


class InputDataError(WmwLinkError):
    """An input file is missing, unreadable, empty, or lacks a required column."""


class KeyFileError(WmwLinkError):
    """A key file is missing, malformed, too short or readable by others."""


class VerificationError(WmwLinkError):
    """A manifest, hash, signature or key check failed: the input is refused."""
