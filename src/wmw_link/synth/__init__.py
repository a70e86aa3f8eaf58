"""Synthetic West Midlands partner extracts with ground truth (``wmw-link synth``).

``generate(people, seed, out)`` writes one extract per partner in that partner's own column
names and formats, the ground truth (record -> person) that only evaluation may read, and
``synth.json`` with the parameters, error rates, realised rates and the true effect of hub
support. See ``docs/contracts.md`` for the file layout.
"""

from wmw_link.synth.extracts import DATASETS
from wmw_link.synth.generate import SynthResult, extract_path, generate
from wmw_link.synth.profiles import PROFILES, PopulationRates, Profile
from wmw_link.synth.rates import ErrorRates

__all__ = [
    "DATASETS",
    "PROFILES",
    "ErrorRates",
    "PopulationRates",
    "Profile",
    "SynthResult",
    "extract_path",
    "generate",
]
