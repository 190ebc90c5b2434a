"""The built book in a real browser (marker ``browser``; CI runs it after ``semalign book``).

Serves ``_build/html`` (or ``$SEMALIGN_BOOK_HTML``) on 127.0.0.1 and drives Debian's
Chromium with Playwright (the PyPI package; no browser download). For every page: no request
leaves 127.0.0.1, none fails, no script error; every chart has drawn SVG marks and no vega
error element; the Table 1 page shows its rows and the paper's numbers.

Locally, a missing Chromium or an unbuilt book skips; with ``CI=true`` they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SEMALIGN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
#: Notebook pages that must carry at least one chart (so the chart checks cannot pass vacuously).
CHART_PAGES = ("00_data", "01_semantic_alignment", "02_transforms", "04_zeroshot")
TABLE1_PAGE = "03_general_to_medical"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _skip_or_fail(msg: str):
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def site_dir() -> Path:
    return Path(os.environ.get("SEMALIGN_BOOK_HTML", ROOT / "_build" / "html"))


def book_pages() -> list[str]:
    """Every content page of the built book, relative to the site root."""
    site = site_dir()
    if not (site / "index.html").is_file():
        return []
    skip = {"genindex.html", "search.html", "index.html"}
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if not p.relative_to(site).parts[0].startswith("_") and p.name not in skip
    )


@pytest.fixture(scope="module")
def server():
    site = site_dir()
    if not (site / "index.html").is_file():
        _skip_or_fail(f"no built book at {site}: run `semalign book` first")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _skip_or_fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the playwright package is missing: pip install playwright")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


#: How long a page may take to settle (every request answered) before the test says which did not.
SETTLE_S = 30.0


def visit(browser, server: str, page_path: str) -> dict:
    """Open one page; return what the checks need (requests, failures, errors, charts, text).

    In-flight requests are tracked explicitly (not with Playwright's ``networkidle``, which
    only times out and never says which request kept the page busy): a request still open
    after :data:`SETTLE_S` is reported by URL under ``pending``.
    """
    ctx = browser.new_context()
    ctx.set_default_timeout(60_000)  # a loaded 2-core CI machine is slow; failures below are explicit
    page = ctx.new_page()
    seen = {"requests": [], "failed": [], "bad_status": [], "errors": [], "console": []}
    in_flight: dict[int, str] = {}

    def started(r):
        seen["requests"].append(r.url)
        in_flight[id(r)] = r.url

    def failed(r):
        in_flight.pop(id(r), None)
        seen["failed"].append(f"{r.url} ({r.failure})")

    page.on("request", started)
    page.on("requestfinished", lambda r: in_flight.pop(id(r), None))
    page.on("requestfailed", failed)
    page.on("response", lambda r: r.status >= 400 and seen["bad_status"].append(f"{r.url} {r.status}"))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: m.type == "error" and seen["console"].append(m.text))
    page.goto(f"{server}/{page_path}", wait_until="load")
    charts = page.locator("div[id^='altair-viz-']")
    n = charts.count()
    drawn = []
    for i in range(n):
        c = charts.nth(i)
        try:  # vega draws asynchronously; marks are <path>/<image>/<text> inside g.mark-* groups
            c.locator("svg g[class*='mark-'] > path, svg g[class*='mark-'] > image").first.wait_for(
                state="attached", timeout=15_000)
        except Exception:
            pass
        drawn.append(c.locator("svg g[class*='mark-'] > *").count())
    deadline = time.monotonic() + SETTLE_S
    while in_flight and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # lets Playwright deliver the requestfinished events
    seen.update(
        pending=sorted(in_flight.values()),
        charts=n, marks=drawn,
        chart_errors=page.locator("div[id^='altair-viz-'] .error").count(),
        text=page.inner_text("main") if page.locator("main").count() else page.inner_text("body"),
    )
    ctx.close()
    return seen


def _off_host(urls: list[str]) -> list[str]:
    bad = []
    for u in urls:
        p = urlparse(u)
        if p.scheme in ("data", "blob", "about"):
            continue
        if p.hostname != "127.0.0.1":
            bad.append(u)
    return bad


@pytest.mark.parametrize("page_path", book_pages() or ["index.html"])
def test_page_is_self_contained_and_draws(browser, server, page_path):
    r = visit(browser, server, page_path)
    assert not _off_host(r["requests"]), f"{page_path} asked hosts other than 127.0.0.1: {_off_host(r['requests'])}"
    assert not r["failed"], f"{page_path}: failed requests {r['failed']}"
    assert not r["pending"], f"{page_path}: requests still unanswered after {SETTLE_S:.0f} s: {r['pending']}"
    assert not r["bad_status"], f"{page_path}: HTTP errors {r['bad_status']}"
    assert not r["errors"], f"{page_path}: script errors {r['errors']}"
    assert r["chart_errors"] == 0, f"{page_path}: a chart shows a vega error"
    assert "Javascript Error" not in r["text"] and "Error loading script" not in r["text"]
    assert all(m > 0 for m in r["marks"]), f"{page_path}: charts without drawn marks: {r['marks']}"
    stem = Path(page_path).stem
    if stem in CHART_PAGES:
        assert r["charts"] >= 1, f"{page_path} should show at least one chart"


def test_every_notebook_page_was_built():
    if not book_pages():
        _skip_or_fail(f"no built book at {site_dir()}: run `semalign book` first")
    if os.environ.get("SEMALIGN_BOOK_HTML"):
        pytest.skip("a custom site is being tested")
    stems = {Path(p).stem for p in book_pages()}
    missing = [s for s in (*CHART_PAGES, TABLE1_PAGE) if s not in stems]
    assert not missing, f"pages missing from the built book: {missing}"


def test_table1_has_rows_and_paper_numbers(browser, server):
    pages = [p for p in book_pages() if Path(p).stem == TABLE1_PAGE]
    if not pages:
        if os.environ.get("SEMALIGN_BOOK_HTML"):
            pytest.skip("the custom site has no Table 1 page")
        _skip_or_fail(f"{TABLE1_PAGE}.html is not in the built book")
    from semalign.book import paper_table1_strings

    r = visit(browser, server, pages[0])
    text = r["text"].replace("\u2192", "->")
    for row in ("Gen -> Med", "Gen -> Gen", "Med -> Gen", "Med -> Med"):
        assert text.count(row) >= 2, f"Table 1 row {row!r} should appear in the paper's table and ours"
    for s in paper_table1_strings():
        assert s in r["text"], f"the paper's number {s!r} is not on the Table 1 page"
    assert "paper" in r["text"].lower() and "ours" in r["text"].lower()


def test_launch_buttons_open_tracked_sources():
    """Every chapter's Binder link opens its jupytext source (a file git tracks), none an
    uncommitted book/generated/ copy; no Colab link (it could only open uncommitted files)."""
    import re
    import subprocess

    if not book_pages():
        _skip_or_fail(f"no built book at {site_dir()}: run `semalign book` first")
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    seen = 0
    for page in book_pages():
        if not page.startswith("book/generated/"):
            continue
        html = (site_dir() / page).read_text()
        assert "colab.research.google.com" not in html, f"{page} offers a Colab link"
        for url in re.findall(r'href="(https://mybinder\.org/[^"]+)"', html):
            target = re.sub(r"^(lab/)?tree/", "", url.split("urlpath=", 1)[1])  # JupyterLab or classic UI
            assert target in tracked, f"{page}: Binder would open {target}, which git does not track"
            seen += 1
    assert seen >= 5, f"expected a Binder link on every chapter, found {seen}"


#: Chapters that end with exercises whose solutions are hidden by default (semalign.course).
EXERCISE_PAGES = ("01_semantic_alignment", "02_transforms", "03_general_to_medical", "04_zeroshot")


def test_solutions_are_hidden_until_opened(browser, server):
    """Every exercise's solution is a dropdown: its content invisible until its title is clicked."""
    pages = [p for p in book_pages() if Path(p).stem in EXERCISE_PAGES]
    if os.environ.get("SEMALIGN_BOOK_HTML") and not pages:
        pytest.skip("the custom site has no exercise pages")
    if len(pages) < len(EXERCISE_PAGES):
        _skip_or_fail(f"exercise pages missing from the built book: {sorted(set(EXERCISE_PAGES) - {Path(p).stem for p in pages})}")
    for page_path in pages:
        ctx = browser.new_context()
        ctx.set_default_timeout(60_000)
        page = ctx.new_page()
        page.goto(f"{server}/{page_path}", wait_until="load")
        assert page.locator(".exercise").count() >= 2, f"{page_path}: expected at least two exercises"
        solutions = page.locator(".solution.dropdown")
        n = solutions.count()
        assert n >= 2, f"{page_path}: expected a solution per exercise, found {n}"
        for i in range(n):
            body = solutions.nth(i).locator("section").first
            body.wait_for(state="hidden", timeout=15_000)  # sphinx-togglebutton collapses it on load
        first = solutions.first
        first.locator("button.toggle-button").click()
        first.locator("section").first.wait_for(state="visible", timeout=15_000)
        ctx.close()
