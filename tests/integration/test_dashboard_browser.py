"""The dashboard opens offline in headless Chromium: charts render, no request leaves the machine.

Saves screenshots under test-artifacts/ (look at them: they are the dashboard as users see it).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from journey_fixtures import Builder, D, agreement  # noqa: E402

from wmw_link.journeys import build_journeys  # noqa: E402
from wmw_link.outcomes import measure_outcomes  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAS = ["Birmingham", "Coventry", "Dudley", "Sandwell", "Solihull", "Walsall", "Wolverhampton"]


def _region(seed: int = 7, people: int = 1500) -> Builder:
    """A small hand-made region: hub starts over 2023, jobs after support, benefit claims."""
    rnd = random.Random(seed)
    b = Builder()
    for i in range(people):
        p = f"p{i}"
        la = rnd.choice(LAS)
        start = D(2023, rnd.randint(1, 12), rnd.randint(1, 28))
        disabled = rnd.random() < 0.25
        b.hub(p, la=la, start=start, gender=rnd.choice(["Female", "Male"]),
              ethnicity=rnd.choice(["White", "White", "Asian", "Black", "Mixed"]),
              disability="Yes" if disabled else "No", birth_year=rnd.randint(1962, 2006))  # fmt: skip
        if rnd.random() < (0.45 if disabled else 0.65):
            job_start = D(start.year + (start.month + 1) // 13, (start.month % 12) + 1, 1)
            b.job(
                p,
                job_start,
                None if rnd.random() < 0.8 else D(2024, 6, 30),
                pay=rnd.uniform(900, 3200),
            )
        if rnd.random() < 0.5:
            b.claim(
                p, D(2022, rnd.randint(1, 12), 1), None if rnd.random() < 0.4 else D(2024, 3, 1)
            )
    return b


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        # .ci/run installs it: under CI a missing browser is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium at /usr/bin/chromium")
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    if os.environ.get("CI"):
        import playwright.sync_api  # noqa: F401 - a dev dependency: must be there in CI
    pytest.importorskip("playwright.sync_api")
    out = tmp_path_factory.mktemp("outcomes")
    res = build_journeys(agreement(), *_region().tables(), as_of=D(2025, 3, 1))
    measure_outcomes(agreement(), (res.events, res.persons), out, as_of=D(2025, 3, 1))
    return out


@pytest.mark.parametrize("name", ["dashboard.html", "dashboard-public.html"])
def test_dashboard_renders_offline(dashboards, tmp_path, name):
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        # A fresh profile directory per run (playwright passes it as --user-data-dir).
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((dashboards / name).as_uri(), wait_until="load")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            charts = page.locator(".js-plotly-plot").count()
            bars = page.locator(
                ".js-plotly-plot .bars path, .js-plotly-plot .scatterlayer path"
            ).count()
            kpis = page.locator(".kpi").count()
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / name.replace(".html", ".png")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert charts == 6  # LA comparison, hubs, gaps, gaps by LA, trend, starts
    assert bars > 50  # the charts drew their marks, not just empty axes
    assert kpis >= 8
    assert errors == []
    leaving = [u for u in requests if not (u.startswith("file:") or u.startswith("data:"))]
    assert leaving == [], f"requests left the machine: {leaving[:3]}"
    assert shot.stat().st_size > 50_000


def test_public_dashboard_has_no_two_way_tables(dashboards):
    text = (dashboards / "dashboard-public.html").read_text(encoding="utf-8")
    assert "public summary" in text
    public_tables = list((dashboards / "public").glob("*.csv"))
    assert public_tables
    for t in public_tables:
        assert " x " not in t.read_text(encoding="utf-8"), t.name


def test_chromium_dump_dom_without_playwright(dashboards, tmp_path):
    """The same check with plain `chromium --dump-dom`, in case playwright is unavailable."""
    import subprocess

    if shutil.which(CHROMIUM) is None:
        pytest.skip("no chromium")
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--virtual-time-budget=15000",
         "--dump-dom", (dashboards / "dashboard.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.count('class="main-svg"') >= 6


def test_across_refreshes_section_renders(tmp_path):
    """Two refreshes (an earlier outcomes output given as --previous): the section's table and
    chart render offline beside the usual six charts."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    first = build_journeys(agreement(), *_region(people=1200).tables(), as_of=D(2025, 3, 1))
    measure_outcomes(agreement(), (first.events, first.persons), tmp_path / "o1",
                     as_of=D(2025, 3, 1))  # fmt: skip
    now = build_journeys(agreement(), *_region().tables(), as_of=D(2025, 6, 1))
    measure_outcomes(agreement(), (now.events, now.persons), tmp_path / "o2",
                     as_of=D(2025, 6, 1), previous=[tmp_path / "o1"])  # fmt: skip
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((tmp_path / "o2" / "dashboard.html").as_uri(), wait_until="load")
            page.wait_for_selector("#chart-across .main-svg", timeout=30_000)
            charts = page.locator(".js-plotly-plot").count()
            rows = page.locator("#across-refreshes table tr").count()
            lines = page.locator("#chart-across .scatterlayer path").count()
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#across-refreshes").screenshot(path=str(ARTIFACTS / "across.png"))
        finally:
            browser.close()
    assert charts == 7 and rows == 3  # header + two refreshes
    assert lines > 0 and errors == []
