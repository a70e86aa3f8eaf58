"""Realised figures of a synthetic run, summed over chunks, for ``synth.json``."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from wmw_link.synth import regions
from wmw_link.synth.labour import N_MONTHS, Labour
from wmw_link.synth.population import People


class Tally:
    """Counts accumulated chunk by chunk; rates are computed at the end."""

    def __init__(self) -> None:
        self.c: dict[str, float] = defaultdict(float)

    def merge(self, other: dict[str, float]) -> None:
        """Add another tally's counts (chunks are merged in chunk order)."""
        for k, v in other.items():
            self.c[k] += v

    def _add(self, key: str, value: float) -> None:
        self.c[key] += float(value)

    def add(self, people: People, lab: Labour) -> None:
        """Count one chunk's people and paths."""
        e0 = lab.employed[:, 0]
        female = people.sex == "F"
        health = ~e0 & (lab.nonwork_type == "inactive_health")
        unemp = ~e0 & (lab.nonwork_type == "unemployed")
        age = people.age
        youth = (age >= 16) & (age <= 24)
        for i, la in enumerate(regions.LAS):
            s = people.la == i
            self._add(f"{la}.pop", s.sum())
            self._add(f"{la}.emp", (e0 & s).sum())
            self._add(f"{la}.f_pop", (s & female).sum())
            self._add(f"{la}.f_emp", (s & female & e0).sum())
            self._add(f"{la}.d_pop", (s & people.disabled).sum())
            self._add(f"{la}.d_emp", (s & people.disabled & e0).sum())
            self._add(f"{la}.nd_pop", (s & ~people.disabled).sum())
            self._add(f"{la}.nd_emp", (s & ~people.disabled & e0).sum())
            self._add(f"{la}.health", (s & health).sum())
        for g in regions.ETHNIC_GROUPS:
            s = people.ethnicity == g
            self._add(f"eth.{g}.pop", s.sum())
            self._add(f"eth.{g}.emp", (s & e0).sum())
        self._add("unemp", unemp.sum())
        self._add("youth_unemp", (unemp & youth).sum())
        self._add("youth_emp", (e0 & youth).sum())
        self._add("emp_end", lab.employed[:, -1].sum())
        self._add("twins", people.twin.sum())
        self._add("juniors", people.junior.sum())
        self._add("households", len(np.unique(people.household_id)))
        for k in (6, 12):
            sel = np.flatnonzero((lab.hub_month >= 0) & (lab.hub_month + k < N_MONTHS))
            col = lab.hub_month[sel] + k
            self._add(f"hub{k}.n", len(sel))
            self._add(f"hub{k}.y1", lab.employed[sel, col].sum())
            self._add(f"hub{k}.y0", lab.employed_cf[sel, col].sum())
        self._add("supported", (lab.hub_month >= 0).sum())
        # Pay of those in work at baseline: sums of log pay give geometric-mean pay gaps.
        logpay = np.log(lab.base_pay)
        group5 = np.array([regions.ETHNIC_GROUP5[g] for g in people.ethnicity], dtype=object)
        groups = {
            "male": people.sex == "M",
            "female": people.sex == "F",
            "not_disabled": ~people.disabled,
            "disabled": people.disabled,
            **{f"eth_{g}": group5 == g for g in ("White", "Asian", "Black", "Mixed", "Other")},
        }
        for name, sel in groups.items():
            s = sel & e0
            self._add(f"pay.{name}.n", s.sum())
            self._add(f"pay.{name}.log", logpay[s].sum())

    def add_neet(self, people: People, rows: np.ndarray, status: np.ndarray) -> None:
        """16-17 NEET status rows of the skills extract (before errors and duplicates)."""
        has = status != None  # noqa: E711
        la = people.la[rows[has]]
        st = status[has]
        for i, name in enumerate(regions.LAS):
            s = la == i
            self._add(f"{name}.neet_rows", s.sum())
            self._add(f"{name}.neet", (s & (st == "NEET")).sum())
            self._add(f"{name}.neet_unknown", (s & (st == "Unknown")).sum())

    def hub_effect(self) -> dict[str, float]:
        """True effect of support on the supported (same random draws, with vs without)."""
        out: dict[str, float] = {"supported_people": self.c["supported"]}
        for k in (6, 12):
            n = self.c[f"hub{k}.n"]
            if n:
                y1, y0 = self.c[f"hub{k}.y1"] / n, self.c[f"hub{k}.y0"] / n
                out[f"employed_{k}m_supported"] = round(y1, 4)
                out[f"employed_{k}m_counterfactual"] = round(y0, 4)
                out[f"att_{k}m_points"] = round(100 * (y1 - y0), 2)
        from wmw_link.synth.effects import ON_RECORD, effect_summary

        # Per outcome in the measures' day-level definitions (employed_<h>m, sustained_*).
        out["by_outcome"] = effect_summary(self.c)  # type: ignore[assignment]
        # The same for the participants some partner's record shows before their first start
        # (a PAYE spell, claim, referral or enrolment beginning earlier): the only ones a
        # records-based evaluation can compare with non-participants (docs/impact.md).
        on_record = effect_summary(self.c, ON_RECORD)
        if on_record:
            out["supported_on_record"] = self.c.get(f"{ON_RECORD}.employed_6m.n", 0.0)
            out["by_outcome_on_record"] = on_record  # type: ignore[assignment]
        return out

    def realised(self) -> dict[str, object]:
        """Employment, gaps and inactivity as generated (baseline month, 2024-01)."""
        c = self.c

        def rate(a: float, b: float) -> float:
            return round(a / b, 4) if b else float("nan")

        by_la = {}
        for la in regions.LAS:
            by_la[la] = {
                "employment_rate": rate(c[f"{la}.emp"], c[f"{la}.pop"]),
                "female_employment_rate": rate(c[f"{la}.f_emp"], c[f"{la}.f_pop"]),
                "disability_gap": round(
                    rate(c[f"{la}.nd_emp"], c[f"{la}.nd_pop"])
                    - rate(c[f"{la}.d_emp"], c[f"{la}.d_pop"]),
                    4,
                ),
                "health_inactivity": rate(c[f"{la}.health"], c[f"{la}.pop"]),
            }
        keys = [la for la in regions.LAS]
        pop = sum(c[f"{la}.pop"] for la in keys)
        emp = sum(c[f"{la}.emp"] for la in keys)
        all_rate = {
            "employment_rate": rate(emp, pop),
            "female_employment_rate": rate(
                sum(c[f"{la}.f_emp"] for la in keys), sum(c[f"{la}.f_pop"] for la in keys)
            ),
            "disability_gap": round(
                rate(sum(c[f"{la}.nd_emp"] for la in keys), sum(c[f"{la}.nd_pop"] for la in keys))
                - rate(sum(c[f"{la}.d_emp"] for la in keys), sum(c[f"{la}.d_pop"] for la in keys)),
                4,
            ),
            "health_inactivity": rate(sum(c[f"{la}.health"] for la in keys), pop),
            "unemployment_rate": rate(c["unemp"], c["unemp"] + emp),
            "youth_unemployment_rate_16_24": rate(
                c["youth_unemp"], c["youth_unemp"] + c["youth_emp"]
            ),
            "employment_rate_2026_09": rate(c["emp_end"], pop),
        }

        def gap(a: str, b: str) -> float:
            """Pay of group a below group b, as a share of b's (geometric means)."""
            na, nb = c[f"pay.{a}.n"], c[f"pay.{b}.n"]
            if not na or not nb:
                return float("nan")
            return round(1 - float(np.exp(c[f"pay.{a}.log"] / na - c[f"pay.{b}.log"] / nb)), 4)

        for la in keys:
            by_la[la]["neet_16_17"] = rate(c[f"{la}.neet"], c[f"{la}.neet_rows"])
        all_rate["neet_16_17"] = rate(
            sum(c[f"{la}.neet"] for la in keys), sum(c[f"{la}.neet_rows"] for la in keys)
        )
        all_rate["neet_unknown_16_17"] = rate(
            sum(c[f"{la}.neet_unknown"] for la in keys), sum(c[f"{la}.neet_rows"] for la in keys)
        )
        return {
            "wmca": all_rate,
            "pay_gaps_geometric_mean": {
                "gender": gap("female", "male"),
                "disability": gap("disabled", "not_disabled"),
                **{
                    f"ethnicity_{g}_vs_White": gap(f"eth_{g}", "eth_White")
                    for g in ("Asian", "Black", "Mixed", "Other")
                },
            },
            "by_la": by_la,
            "employment_rate_by_ethnicity": {
                g: rate(c[f"eth.{g}.emp"], c[f"eth.{g}.pop"]) for g in regions.ETHNIC_GROUPS
            },
            "households": int(c["households"]),
            "people_with_a_twin": int(c["twins"]),
            "sons_sharing_fathers_forename": int(c["juniors"]),
        }
