"""The trusted third party's persistent person index: stable person ids across deliveries.

``store`` (on-disk format, manifest, versioning, verification, lock), ``incremental`` (a full
fit, or scoring only pairs touching new records with the stored model), ``persons`` (connected
components over accepted edges, id assignment, id changes), ``reconcile`` (maximum-overlap id
carry-over), ``run`` (the ``link --index`` run). See docs/person-index.md.
"""

from wmw_link.linkage.index.run import ID_CHANGES_NAME, IndexResult, link_index

__all__ = ["ID_CHANGES_NAME", "IndexResult", "link_index"]
