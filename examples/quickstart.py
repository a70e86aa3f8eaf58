import shutil
from pathlib import Path

from wmw_link import load_agreement
from wmw_link.evaluate import evaluate
from wmw_link.journeys import build_journeys
from wmw_link.keys import new_key
from wmw_link.linkage import link
from wmw_link.outcomes import measure_outcomes
from wmw_link.synth import generate
from wmw_link.tokenise import tokenise


def hand_over(patterns: list[str], to: str) -> None:  # in production: wmw-link seal / unseal
    Path(to).mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for f in Path("controllers").glob(pattern):
            shutil.copy(f, to)


a = load_agreement("agreements/wmw-outcomes.yaml")
generate(people=5_000, seed=1, out="world")  # synthetic extracts + ground truth
key, ref = new_key("keys/linkage.key"), new_key("keys/row-ref.key")
for ds in a.datasets:  # each controller, on its own machine
    ext = "parquet" if ds.id == "hmrc_rti" else "csv"
    tokenise(a, ds.id, f"world/extracts/{ds.id}.{ext}", key, ref, "controllers")

hand_over(["*.tokens.parquet", "*.manifest.json"], "ttp/inbox")
link(a, "ttp/inbox", "ttp/maps")  # the TTP: tokens and manifests only
print(evaluate("ttp/maps", "world/truth/truth.parquet", crosswalks="controllers").summary())

hand_over(["*.payload.parquet", "*.manifest.json"], "analysis/payloads")
build_journeys(a, "analysis/payloads", "ttp/maps", "analysis/journeys")  # the analysts
measure_outcomes(a, "analysis/journeys", "analysis/outcomes")  # SDC tables + dashboard.html
