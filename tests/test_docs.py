"""The documentation site: `relgraph docs` builds it from the notebooks; every link of the built HTML is checked.

Fast tests build a toy project and three real pages (`only=`) and check their links without a browser. The `slow`
tests build the whole site, check all its links, and look at it in headless Chromium: they need the `docs` extra
(mkdocs, mkdocs-material, playwright) and Debian's `chromium` (installed here with apt-get where missing; playwright
only drives it, `playwright install` is never run). Screenshots go to artifacts/docs/.
"""
import functools, http.server, json, re, shutil, subprocess, sys, tempfile, threading
from pathlib import Path
from urllib.parse import urljoin, urldefrag, urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "docs"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium() -> str:
    "Path of Debian's chromium, installed with apt-get where missing."
    if not shutil.which("chromium"):
        subprocess.run("apt-get install -y chromium || (apt-get update && apt-get install -y chromium)",
                       shell=True, capture_output=True, text=True)
    path = shutil.which("chromium")
    assert path, "chromium is not installed and `apt-get install -y chromium` failed"
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def test_readme_is_generated_from_index():
    from relgraph.docs import readme_markdown
    text = readme_markdown(ROOT / "nbs" / "index.ipynb")
    assert "bash scripts/demo.sh" in text and "bash scripts/test.sh" in text
    assert (ROOT / "README.md").read_text() == text, "README.md is stale: run `relgraph docs` (or relgraph.docs.write_readme())"


def test_toy_project_site(tmp_path):
    "A two-notebook project: pages, navigation, API card and figure end up in the site."
    from relgraph.docs import build_site
    (tmp_path / "settings.ini").write_text((ROOT / "settings.ini").read_text())
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "nbs").mkdir()
    new = nbformat.v4
    nbformat.write(new.new_notebook(cells=[new.new_markdown_cell("# Toy\n\n> A toy home page.\n\nSee [the module](00_toy.ipynb).")]),
                   tmp_path / "nbs" / "index.ipynb")
    nbformat.write(new.new_notebook(cells=[
        new.new_code_cell("#| default_exp toy"),
        new.new_markdown_cell("# Toy module\n\n> Doubles numbers."),
        new.new_code_cell('#| export\ndef double(x: int, # the number\n          ) -> int:\n    "Twice `x`."\n    return 2 * x'),
        new.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [0, double(1)]); fig"),
    ]), tmp_path / "nbs" / "00_toy.ipynb")
    recs = build_site(tmp_path / "site", root=tmp_path)
    assert [r["error"] for r in recs.values()] == [None, None]
    home, mod = (tmp_path / "site" / "index.html").read_text(), (tmp_path / "site" / "00_toy.html").read_text()
    assert 'href="00_toy.html"' in home and "A toy home page." in home
    assert 'id="double"' in mod and "Twice" in mod and "fonts.googleapis" not in mod
    figs = list((tmp_path / "site" / "figures" / "00_toy").glob("*.png"))
    assert len(figs) == 1 and figs[0].read_bytes()[:4] == b"\x89PNG"
    assert "<th>Parameter</th>" in mod and "<code>x</code>" in mod and "the number" in mod     # docments table
    assert mod.index('id="double"') < mod.index("Implementation") and '<details class="example"' in mod   # card first, code folded
    assert "This page ran in" in mod
    from relgraph.docs import broken_links
    assert broken_links(tmp_path / "site") == []


PARTIAL = ["00a_registry", "02b_datasets", "05_features"]   # quick to execute


@pytest.fixture(scope="module")
def partial_site(tmp_path_factory):
    "Three real pages (cached executions are reused), built as `relgraph docs --only` would."
    from relgraph.docs import build_site
    out = tmp_path_factory.mktemp("partial") / "site"
    recs = build_site(out, root=ROOT, only=PARTIAL)
    assert {k: r["error"] for k, r in recs.items()} == {k: None for k in PARTIAL}
    return out


def test_partial_site_links(partial_site):
    "Every href/src of the built pages exists, every #anchor is an id; links to pages not built here name real pages."
    from relgraph.docs import broken_links, doc_notebooks
    assert broken_links(partial_site, pages={p.stem for p in doc_notebooks(ROOT / "nbs")}) == []


def test_reference_page_reads_like_a_reference(partial_site):
    page = (partial_site / "00a_registry.html").read_text()
    card = page.index('class="api-card"')
    assert card < page.index("<summary>Implementation and tests</summary>")          # the API leads, code folds
    assert any("<th>Parameter</th>" in (partial_site / f"{p}.html").read_text() for p in PARTIAL)   # docments tables
    assert re.search(r'href="https://github.com/relgraph/relgraph/blob/main/relgraph/registry.py#L\d+"', page)
    assert "This page ran in" in page
    nav = re.findall(r'<a href="([^"#]+)" class="md-nav__link', page)                  # the sidebar
    assert [n for n in dict.fromkeys(nav) if n.removesuffix(".html") in PARTIAL] == [f"{p}.html" for p in PARTIAL]


def test_quarto_stand_in_stops_with_one_line():
    "Without Quarto, anything but `quarto render` stops at once with one line naming `relgraph docs`."
    env = {**__import__("os").environ, "RELGRAPH_QUARTO_STANDIN": "1"}
    r = subprocess.run([sys.executable, "-c", "from relgraph.docs import quarto_main; quarto_main()", "preview"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "`relgraph docs`" in r.stderr
    assert "quarto=relgraph.docs:quarto_main" in (ROOT / "settings.ini").read_text()


def test_nbdev_generated_files_are_ignored():
    names = ["nbs/_quarto.yml", "nbs/nbdev.yml", "nbs/sidebar.yml", "_proc/x.ipynb", "_docs/index.html"]
    r = subprocess.run(["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True)
    assert r.stdout.split() == names


@pytest.fixture(scope="module")
def site():    # the whole site: minutes on a fresh clone, seconds from the cache
    from relgraph.docs import docs_cli
    docs_cli(out="_docs")        # raises SystemExit naming the notebooks that failed
    return ROOT / "_docs"


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    exe = chromium()
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                                                   viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


def check_page(ctx, base: str, path: str, title: str, min_images: int) -> dict:
    "Open `path`, check it the way a reader would, keep a screenshot; returns what was seen."
    page, problems = ctx.new_page(), []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    resp = page.goto(base + path, wait_until="networkidle")
    assert resp and resp.status == 200, f"{path}: HTTP {resp and resp.status}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{Path(path).stem}.png"), full_page=True)
    assert title in page.title(), f"{path}: title {page.title()!r}"
    assert title in page.inner_text("article h1"), f"{path}: no heading {title!r}"
    images = page.eval_on_selector_all("article img", "els => els.map(i => [i.src, i.complete && i.naturalWidth > 0])")
    assert [src for src, ok in images if not ok] == [], f"{path}: broken images"
    assert len(images) >= min_images, f"{path}: {len(images)} figures, expected at least {min_images}"
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    internal = sorted({urldefrag(h)[0] for h in hrefs if h.startswith(base)})
    broken = [u for u in internal if ctx.request.get(u).status != 200]
    assert broken == [], f"{path}: links to missing pages: {broken}"
    assert problems == [], f"{path}: " + "; ".join(problems)
    page.close()
    return dict(images=len(images), internal_links=len(internal))


@pytest.mark.slow
def test_home_page_in_browser(site, server, browser):
    seen = check_page(browser, server, "index.html", "relgraph", min_images=0)
    assert seen["internal_links"] >= 5          # navigation to the tutorial, guides and reference pages


@pytest.mark.slow
def test_tutorial_page_in_browser(site, server, browser):
    seen = check_page(browser, server, "tutorial.html", "Tutorial", min_images=1)
    assert seen["images"] >= 1


@pytest.mark.slow
def test_every_page_was_built(site):
    from relgraph.docs import doc_notebooks
    pages = {p.stem for p in doc_notebooks(ROOT / "nbs")}
    assert {"index", "tutorial", "byo_database", "running_on_kaggle"} <= pages
    assert sorted(p for p in pages if not (site / f"{p}.html").exists()) == []


@pytest.mark.slow
def test_whole_site_links(site):
    from relgraph.docs import broken_links
    assert broken_links(site) == []
    assert "This page ran in" in (site / "tutorial.html").read_text()      # the tutorial says how long it took
