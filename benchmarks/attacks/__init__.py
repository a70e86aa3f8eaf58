"""Attacks by an honest-but-curious trusted third party on token files (issue 10).

The attacker holds every tokens file and manifest of a run, the dataset names, the published
token schema and code, and a *reference population* (a synthetic world from another seed,
standing in for ONS name, birth and postcode tables); never the key, never the target's
plaintext. Modules:

* :mod:`.world`: synthetic worlds, normalised identifier fields, the attacker's view;
* :mod:`.schema_v2`: a frozen copy of token schema v2 (benchmark only, no longer the product);
* :mod:`.schema_v3`: the product's own tokeniser and its ``composites`` interface;
* :mod:`.frequency`, :mod:`.calendar`, :mod:`.components`, :mod:`.bloom`: the attack families;
* :mod:`.score`: the scorer (truth, crosswalks, normalisers) - never called by an attack.
"""
