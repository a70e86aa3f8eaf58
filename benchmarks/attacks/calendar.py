"""The calendar reconstruction: date-of-birth tokens that meet across columns rebuild the calendar."""

from __future__ import annotations

import calendar as cal
import contextlib
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


def _find(columns: list[Column], transform: str) -> str | None:
    for c in columns:
        if c.kind == "hmac" and c.parts == (("date_of_birth", transform),):
            return c.name
    return None


def _chains(succ: dict[int, int]) -> tuple[dict[int, int], dict[int, int]]:
    """Chain id and position of every date token, following "+1 day" edges from chain heads."""
    has_pred = set(succ.values())
    chain: dict[int, int] = {}
    pos: dict[int, int] = {}
    for head in (set(succ) | has_pred) - has_pred:
        p, t = 0, head
        while t is not None and t not in chain:
            chain[t], pos[t] = head, p
            p += 1
            t = succ.get(t)
    return chain, pos


def _place(
    adj: dict[int, list[tuple[int, int]]],
    adj2: dict[int, list[tuple[int, int]]],
    md_counts: Counter[int],
) -> tuple[dict[int, int], dict[int, int]]:
    """Position (mod 366) of every month-day token relative to its component's first token:
    by one-day edges, then two-day edges (``adj2``) from placed tokens to unplaced ones."""
    frame: dict[int, int] = {}
    component: dict[int, int] = {}

    def spread(stack: list[int]) -> None:
        while stack:
            a = stack.pop()
            for b, off in adj[a]:
                if b not in frame:
                    frame[b], component[b] = (frame[a] + off) % 366, component[a]
                    stack.append(b)

    for start in sorted(md_counts, key=lambda k: -md_counts[k]):
        if start not in frame:
            frame[start], component[start] = 0, start
            spread([start])
    # Merge: a two-day edge from a bigger component's token re-bases a smaller component.
    size = Counter(component.values())
    for a in sorted(adj2, key=lambda k: -size[component[k]]):
        for b, off in adj2[a]:
            ca, cb = component[a], component[b]
            if ca != cb and size[ca] >= size[cb]:
                shift = (frame[a] + off - frame[b]) % 366
                for k in [k for k, c in component.items() if c == cb]:
                    frame[k], component[k] = (frame[k] + shift) % 366, ca
                size[ca] += size.pop(cb)
    return frame, component


def _month_days(
    md_succ: dict[int, Counter[int]],
    md_gap2: list[tuple[int, int]],
    jan1_tokens: list[int],
    md_counts: Counter[int],
) -> tuple[dict[int, dt.date], int | None]:
    """Month-day token -> its day (in leap year 2000), and the 29 February token if found.

    28 February is the one month-day with two successors; the rarer is 29 February. Every
    month-day is placed on the 366-day frame from one-day (then two-day) edges, and New Year
    (the first exact token after a change of year token) fixes the frame."""
    feb29 = None
    blocked: set[tuple[int, int]] = set()
    for a, nxt in md_succ.items():
        if len(nxt) == 2:
            x, y = sorted(nxt, key=lambda k: md_counts[k])
            feb29 = x
            blocked.add((a, y))  # 28 Feb -> 1 Mar skips the leap day on the 366-day frame
    adj: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, nxt in md_succ.items():
        for b in nxt:
            if (a, b) not in blocked:
                adj[a].append((b, 1))
                adj[b].append((a, -1))
    # Two-day edges only reach month-days no one-day edge reaches: across the end of February
    # of a common year two days are three on the 366-day frame.
    adj2: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a, b in md_gap2:
        adj2[a].append((b, 2))
        adj2[b].append((a, -2))
    frame, component = _place(adj, adj2, md_counts)
    jan1: dict[int, Counter[int]] = defaultdict(Counter)
    for b in jan1_tokens:
        if b in frame:
            jan1[component[b]][frame[b]] += 1
    label: dict[int, dt.date] = {}
    for k in frame:
        votes = jan1.get(component[k])
        if votes:
            label[k] = _LEAP_DAYS[(frame[k] - votes.most_common(1)[0][0]) % 366]
    if feb29 is not None:
        label[feb29] = _LEAP_DAYS[_FEB29]
    return label, feb29


#: Runs of year tokens holding at least this share of records are laid out end to end.
CORE_SHARE = 0.002
#: A year with a 29 February birth placed on a common year (finite, so that the search can
#: move through bad orders to good ones).
LEAP_SEEN_COST = 1.0
#: A populous leap year with nobody born on 29 February is unlikely: this cost per such year.
LEAP_MISS_COST = 0.05


def _greedy(
    runs: list[list[int]],
    year_counts: Counter[int],
    leap_tokens: set[int],
    reference_years: Mapping[int, int],
) -> dict[int, int]:
    """Longest run first, each at its best free place (leap years, age pyramid): the start of
    :func:`_layout`'s search."""
    ref_total = sum(reference_years.values()) or 1
    tgt_total = sum(year_counts.values()) or 1
    lo, hi = min(reference_years) - 30, max(reference_years) + 30
    label: dict[int, int] = {}
    taken: set[int] = set()
    for run in sorted(runs, key=len, reverse=True):
        best, best_cost = None, np.inf
        for s in range(lo, hi - len(run) + 2):
            years = range(s, s + len(run))
            if any(y in taken for y in years):
                continue
            cost = 0.0
            for y, tok in zip(years, run, strict=True):
                leap = cal.isleap(y)
                if tok in leap_tokens and not leap:
                    cost += LEAP_SEEN_COST
                elif leap and tok not in leap_tokens and year_counts[tok] >= 2922:
                    cost += LEAP_MISS_COST
                cost += abs(year_counts[tok] / tgt_total - reference_years.get(y, 0) / ref_total)
            if cost < best_cost:
                best, best_cost = s, cost
        if best is not None:
            for i, tok in enumerate(run):
                label[tok] = best + i
                taken.add(best + i)
    return label


def _layout(
    runs: list[list[int]],
    year_counts: Counter[int],
    leap_tokens: set[int],
    reference_years: Mapping[int, int],
) -> tuple[list[list[int]], int]:
    """Order of the runs and first year minimising the L1 distance between the target's and
    the reference's year shares, with leap years where 29 February was seen and not where a
    populous year lacks it."""
    lo, hi = min(reference_years) - 30, max(reference_years) + 30
    years = np.arange(lo, hi + 1)
    ref = np.array([reference_years.get(int(y), 0) for y in years], float)
    ref /= ref.sum() or 1
    is_leap = np.array([cal.isleap(int(y)) for y in years])
    total = sum(year_counts.values()) or 1

    def cost(order: list[list[int]]) -> tuple[float, int]:
        toks = [t for r in order for t in r]
        k = len(toks)
        if k > len(years):
            return np.inf, lo
        share = np.array([year_counts[t] / total for t in toks])
        seen = np.array([t in leap_tokens for t in toks])
        populous = np.array([year_counts[t] >= 2922 for t in toks])  # P(no 29 Feb) < 0.14
        idx = np.arange(len(years) - k + 1)[:, None] + np.arange(k)[None, :]
        leap = is_leap[idx]
        c = np.abs(share[None, :] - ref[idx]).sum(axis=1)
        c += LEAP_SEEN_COST * (seen[None, :] & ~leap).sum(axis=1)
        c += LEAP_MISS_COST * (leap & ~seen[None, :] & populous[None, :]).sum(axis=1)
        i = int(np.argmin(c))
        return float(c[i]), int(years[i])

    order = list(runs)  # the caller's order is the search's start
    best, start = cost(order)
    improved = True
    while improved:
        improved = False
        for i in range(len(order)):
            for j in range(len(order)):
                if i == j:
                    continue
                trial = order[:i] + order[i + 1 :]
                trial.insert(j, order[i])
                c, s0 = cost(trial)
                if c < best - 1e-12:
                    order, best, start, improved = trial, c, s0, True
    return order, start


def _years(
    year_succ: dict[int, Counter[int]],
    year_counts: Counter[int],
    leap_tokens: set[int],
    reference_years: Mapping[int, int],
) -> tuple[dict[int, int], int]:
    """Year token -> year: runs ordered by New-Year crossings placed where leap years agree and
    the counts best match the reference's age pyramid; the rest by frequency rank."""
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
    # The populous years are consecutive: lay their runs end to end, in the order and at the
    # first year that best fit leap years and the age pyramid (local search over orders).
    total = sum(year_counts.values()) or 1
    core = [r for r in runs if sum(year_counts[t] for t in r) >= CORE_SHARE * total]
    label: dict[int, int] = {}
    taken: set[int] = set()
    if core:
        greedy = _greedy(core, year_counts, leap_tokens, reference_years)
        core.sort(key=lambda r: greedy.get(r[0], 10_000))
        order, start = _layout(core, year_counts, leap_tokens, reference_years)
        y = start
        for r in order:
            for tok in r:
                label[tok], y = y, y + 1
                taken.add(label[tok])
    placed = len(label)
    rest = sorted((y for y in year_counts if y not in label), key=lambda k: -year_counts[k])
    free = sorted((y for y in reference_years if y not in taken), key=lambda k: -reference_years[k])
    label.update(zip(rest, free, strict=False))
    return label, placed


def _neighbour_edges(
    info: dict[int, tuple[int, int]], chain: dict[int, int], pos: dict[int, int]
) -> tuple[dict[int, Counter[int]], list[tuple[int, int]], dict[int, Counter[int]], list[int]]:
    """Edges between exact tokens that are neighbours in a chain: month-day successors (one
    day apart), month-days two days apart, year successors (New Year crossed) and the
    month-day tokens of 1 January."""
    by_chain: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t in info:
        if t in chain:
            by_chain[chain[t]].append((pos[t], t))
    md_succ: dict[int, Counter[int]] = defaultdict(Counter)
    md_gap2: list[tuple[int, int]] = []
    year_succ: dict[int, Counter[int]] = defaultdict(Counter)
    jan1_tokens: list[int] = []
    for seq in by_chain.values():
        seq.sort()
        for (pa_, a), (pb, b) in zip(seq[:-1], seq[1:], strict=True):
            gap = pb - pa_
            (ma, ya), (mb, yb) = info[a], info[b]
            if gap == 1:
                md_succ[ma][mb] += 1
            elif gap == 2:
                md_gap2.append((ma, mb))
            if ya != yb and gap <= 3:  # neighbours in a chain: at most 3 days apart
                year_succ[ya][yb] += 1
                if gap == 1:
                    jan1_tokens.append(mb)
    return md_succ, md_gap2, year_succ, jan1_tokens


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
    exact_c, md_c, year_c = _find(columns, "exact"), _find(columns, "md"), _find(columns, "year")
    enc = {c.name: (c.domain, c.encoding) for c in columns}
    shifted = [
        (c, sign) for c, sign in ((_find(columns, "prev"), -1), (_find(columns, "next"), 1))
        if c and exact_c and enc[c] == enc[exact_c] and c in tokens.column_names
    ]  # fmt: skip
    if not (exact_c and shifted and md_c and year_c):
        res.notes["applicable"] = False
        return res
    ex, ex_ok = int_tokens(tokens[exact_c])
    md, md_ok = int_tokens(tokens[md_c])
    yr, yr_ok = int_tokens(tokens[year_c])

    # 1. chains of consecutive days from the "+1 day" edges
    succ: dict[int, int] = {}
    for c, sign in shifted:
        v, ok = int_tokens(tokens[c])
        m = ok & ex_ok
        if sign < 0:
            succ.update(zip(v[m].tolist(), ex[m].tolist(), strict=True))
        else:
            succ.update(zip(ex[m].tolist(), v[m].tolist(), strict=True))
    chain, pos = _chains(succ)
    res.notes["date_tokens"] = len(pos)
    res.notes["chains"] = len(set(chain.values()))

    # exact tokens with their month-day and year tokens; edges between neighbours in a chain
    m = ex_ok & md_ok & yr_ok
    info = dict(zip(ex[m].tolist(), zip(md[m].tolist(), yr[m].tolist(), strict=True), strict=True))
    md_succ, md_gap2, year_succ, jan1_tokens = _neighbour_edges(info, chain, pos)

    # 2. month-days, 3. years
    md_label, feb29 = _month_days(md_succ, md_gap2, jan1_tokens, Counter(md[md_ok].tolist()))
    res.notes["month_days_labelled"] = len(md_label)
    res.notes["leap_day_found"] = feb29 is not None
    leap_tokens = {y for mk, y in info.values() if mk == feb29} if feb29 is not None else set()
    year_counts = Counter(yr[yr_ok & ex_ok].tolist())
    year_label, placed = _years(year_succ, year_counts, leap_tokens, reference_years)
    res.notes["years_placed_by_runs"] = placed
    res.notes["years_by_rank"] = len(year_label) - placed

    # 4. dates of exact tokens, then each chain by the majority of its labelled tokens
    date_of: dict[int, int] = {}
    for t, (mk, y) in info.items():
        d, yl = md_label.get(mk), year_label.get(y)
        if d is not None and yl is not None:
            with contextlib.suppress(ValueError):  # 29 February of a year taken as common
                date_of[t] = dt.date(yl, d.month, d.day).toordinal()
    counts = Counter(ex[ex_ok].tolist())
    chain_start: dict[int, Counter[int]] = defaultdict(Counter)
    for t, o in date_of.items():
        if t in chain:
            chain_start[chain[t]][o - pos[t]] += counts[t]
    for t in counts:
        if t in chain and chain[t] in chain_start:
            date_of[t] = chain_start[chain[t]].most_common(1)[0][0] + pos[t]
    iso = {t: dt.date.fromordinal(o).isoformat() for t, o in date_of.items()}
    guess = np.full(tokens.num_rows, None, dtype=object)
    rows = np.flatnonzero(ex_ok)
    guess[rows] = [iso.get(t) for t in ex[rows].tolist()]
    res.fields["date_of_birth"] = guess
    res.columns[exact_c] = guess
    res.notes["applicable"] = True
    res.seconds = time.perf_counter() - t0
    return res
