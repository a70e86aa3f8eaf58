"""Fixtures of the adversarial suite (helpers in _adv.py)."""

from _adv import agreement, parties  # noqa: F401 - fixtures
