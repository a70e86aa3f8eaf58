"""The calendar reconstruction: date-of-birth tokens that meet across columns rebuild the calendar."""

from __future__ import annotations

import calendar as cal
import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from benchmarks.attacks.common import AttackResult, int_tokens
from benchmarks.attacks.world import Column

#: Day-of-year slots of a leap year (0 = 01-01, 59 = 02-29, 365 = 12-31).
_LEAP_DAYS = [dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in range(366)]
_FEB29 = 59


def _find(columns: list[Column], transform: str, encoding: str | None = None) -> str | None:
    for c in columns:
        if c.kind == "hmac" and c.parts == (("date_of_birth", transform),):
            if encoding is None or c.encoding == encoding:
                return c.name
    return None


def calendar_attack(
    tokens: pa.Table, columns: list[Column], reference_years: Mapping[int, int]
) -> AttackResult:
    """Recover exact dates of birth from date tokens that are comparable across columns.

    Source: issue 10's adversarial review of token schema v2, after the chain and graph attacks
    of Vidanage, Christen, Ranbaduge and Schnell, "A graph matching attack on privacy-preserving
    record linkage" (CIKM 2020) and Culnane, Rubinstein and Teague, "Health data in an open
    world" (2017), who re-identified linked data from date structure.

    Needs a day-before and/or day-after column hashed like the date itself (same domain and
    encoding as ``exact``), a month-day and a year column (v2: ``dob_prev``, ``dob_exact``,
    ``dob_next``, ``dob_md``, ``dob_year``). Steps:

    1. ``prev -> exact -> next`` give "+1 day" edges between date tokens; walking them gives
       chains of consecutive days (position known within each chain).
    2. Consecutive exact tokens in a chain give month-day successor edges; the one month-day
       token with two successors is 28 February, the rarer successor (which itself precedes the
       other) is 29 February. Placing every month-day token on the 366-day frame and finding New
       Year (consecutive exact tokens whose year tokens differ) labels all month-days.
    3. New-Year crossings order the year tokens into runs; 29 February marks leap years; each
       run is placed on the calendar where leap years agree and its counts best match the
       reference's age pyramid; years left over are labelled by frequency rank.
    4. Each chain is labelled by the majority of its labelled tokens, which fills in the rest.
    """
    t0 = time.perf_counter()
    res = AttackResult("calendar reconstruction")
    exact_c = _find(columns, "exact", None)
    prev_c, next_c = _find(columns, "prev"), _find(columns, "next")
    md_c, year_c = _find(columns, "md"), _find(columns, "year")
    enc = {c.name: (c.domain, c.encoding) for c in columns}
    usable = [
        c for c in (prev_c, next_c)
        if c and exact_c and enc[c] == enc[exact_c] and c in tokens.column_names
    ]  # fmt: skip
    if not (exact_c and usable and md_c and year_c):
        res.notes["applicable"] = False
        return res
    n = tokens.num_rows
    ex, ex_ok = int_tokens(tokens[exact_c])
    md, md_ok = int_tokens(tokens[md_c])
    yr, yr_ok = int_tokens(tokens[year_c])

    # 1. chains of consecutive days
    succ: dict[int, int] = {}
    for c in usable:
        v, ok = int_tokens(tokens[c])
        m = ok & ex_ok
        pairs = zip(v[m].tolist(), ex[m].tolist(), strict=True)
        if c == prev_c:
            succ.update(pairs)
        else:
            succ.update((e, x) for x, e in pairs)
    has_pred = set(succ.values())
    nodes = set(succ) | has_pred
    chain: dict[int, int] = {}
    pos: dict[int, int] = {}
    for head in nodes - has_pred:
        cid, p, t = head, 0, head
        while t is not None and t not in chain:
            chain[t], pos[t] = cid, p
            p += 1
            t = succ.get(t)
    res.notes["date_tokens"] = len(nodes)
    res.notes["chains"] = len(set(chain.values()))

    # exact tokens with their month-day and year tokens
    m = ex_ok & md_ok & yr_ok
    info: dict[int, tuple[int, int]] = dict(
        zip(ex[m].tolist(), zip(md[m].tolist(), yr[m].tolist(), strict=True), strict=True)
    )
    counts = Counter(ex[ex_ok].tolist())
    by_chain: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t in info:
        if t in chain:
            by_chain[chain[t]].append((pos[t], t))
    md_succ: dict[int, Counter[int]] = defaultdict(Counter)
    md_gap2: list[tuple[int, int]] = []
    year_succ: dict[int, Counter[int]] = defaultdict(Counter)
    newyear: list[tuple[int, int]] = []  # (md of 31 Dec, md of 1 Jan)
    for seq in by_chain.values():
        seq.sort()
        for (pa_, a), (pb, b) in zip(seq[:-1], seq[1:], strict=True):
            gap = pb - pa_
            (ma, ya), (mb, yb) = info[a], info[b]
            if gap == 1:
                md_succ[ma][mb] += 1
            elif gap == 2:
                md_gap2.append((ma, mb))
            if ya != yb and gap <= 3:
                year_succ[ya][yb] += 1
                if gap == 1:
                    newyear.append((ma, mb))

    # 2. month-day labels
    md_counts = Counter(md[md_ok].tolist())
    feb29 = None
    blocked: set[tuple[int, int]] = set()
    for a, nxt in md_succ.items():
        if len(nxt) == 2:
            x, y = sorted(nxt, key=lambda k: md_counts[k])  # 29 Feb is the rarer one
            feb29 = x
            blocked.add((a, y))  # 28 Feb -> 1 Mar skips the leap day on the 366-day frame
    frame: dict[int, int] = {}
    adj: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, nxt in md_succ.items():
        for b in nxt:
            if (a, b) not in blocked:
                adj[a].append((b, 1))
                adj[b].append((a, -1))
    for a, b in md_gap2:  # only to reach month-days no one-day edge reaches
        adj[a].append((b, 2))
        adj[b].append((a, -2))
    components: dict[int, int] = {}
    for start in sorted(md_counts, key=lambda k: -md_counts[k]):
        if start in frame:
            continue
        frame[start], components[start] = 0, start
        stack = [start]
        while stack:
            a = stack.pop()
            for b, off in adj[a]:
                if b not in frame:
                    frame[b], components[b] = (frame[a] + off) % 366, start
                    stack.append(b)
    jan1: dict[int, Counter[int]] = defaultdict(Counter)
    for _, b in newyear:
        if b in frame:
            jan1[components[b]][frame[b]] += 1
    md_label: dict[int, dt.date] = {}
    for k in frame:
        votes = jan1.get(components[k])
        if votes:
            md_label[k] = _LEAP_DAYS[(frame[k] - votes.most_common(1)[0][0]) % 366]
    if feb29 is not None:
        md_label[feb29] = _LEAP_DAYS[_FEB29]
    res.notes["month_days_labelled"] = len(md_label)
    res.notes["leap_day_found"] = feb29 is not None

    # 3. years: runs ordered by New-Year crossings, placed by leap years and the age pyramid
    year_counts = Counter(yr[yr_ok & ex_ok].tolist())
    leap_tokens = {y for t, (mk, y) in info.items() if mk == feb29} if feb29 is not None else set()
    nxt_year = {a: c.most_common(1)[0][0] for a, c in year_succ.items()}
    has_prev = set(nxt_year.values())
    runs: list[list[int]] = []
    seen: set[int] = set()
    for y in sorted(year_counts, key=lambda k: -year_counts[k]):
        if y in seen or y in has_prev:
            continue
        run = [y]
        seen.add(y)
        while run[-1] in nxt_year and nxt_year[run[-1]] not in seen:
            run.append(nxt_year[run[-1]])
            seen.add(run[-1])
        runs.append(run)
    ref_total = sum(reference_years.values()) or 1
    tgt_total = sum(year_counts.values()) or 1
    lo, hi = min(reference_years) - 30, max(reference_years) + 30
    year_label: dict[int, int] = {}
    taken: set[int] = set()
    for run in sorted(runs, key=len, reverse=True):
        if len(run) < 2:
            continue
        share = np.array([year_counts[y] / tgt_total for y in run])
        best, best_cost = None, np.inf
        for s in range(lo, hi - len(run) + 2):
            years = range(s, s + len(run))
            if any(y in taken for y in years):
                continue
            cost = 0.0
            for y, tok, sh in zip(years, run, share, strict=True):
                leap = cal.isleap(y)
                if tok in leap_tokens and not leap:
                    cost = np.inf
                    break
                if leap and tok not in leap_tokens and year_counts[tok] >= 2922:
                    cost += 1.0  # a populous leap year with nobody born on 29 Feb: unlikely
                cost += abs(sh - reference_years.get(y, 0) / ref_total)
            if cost < best_cost:
                best, best_cost = s, cost
        if best is not None:
            for i, tok in enumerate(run):
                year_label[tok] = best + i
                taken.add(best + i)
    rest_tokens = sorted((y for y in year_counts if y not in year_label), key=lambda k: -year_counts[k])
    rest_years = sorted((y for y in reference_years if y not in taken), key=lambda k: -reference_years[k])
    for tok, y in zip(rest_tokens, rest_years, strict=False):
        year_label[tok] = y
    res.notes["year_runs"] = sum(1 for r in runs if len(r) >= 2)
    res.notes["years_placed_by_runs"] = len(year_label) - min(len(rest_tokens), len(rest_years))

    # 4. dates of exact tokens, then each chain by the majority of its labelled tokens
    date_of: dict[int, int] = {}
    for t, (mk, y) in info.items():
        d, yl = md_label.get(mk), year_label.get(y)
        if d is not None and yl is not None:
            try:
                date_of[t] = dt.date(yl, d.month, d.day).toordinal()
            except ValueError:
                pass
    chain_start: dict[int, Counter[int]] = defaultdict(Counter)
    for t, o in date_of.items():
        if t in chain:
            chain_start[chain[t]][o - pos[t]] += counts[t]
    for t in counts:
        if t in chain and chain[t] in chain_start:
            date_of[t] = chain_start[chain[t]].most_common(1)[0][0] + pos[t]
    iso = {t: dt.date.fromordinal(o).isoformat() for t, o in date_of.items()}
    guess = np.full(n, None, dtype=object)
    for i in np.flatnonzero(ex_ok):
        guess[i] = iso.get(int(ex[i]))
    res.fields["date_of_birth"] = guess
    res.columns[exact_c] = guess
    res.notes["applicable"] = True
    res.seconds = time.perf_counter() - t0
    return res
