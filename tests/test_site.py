"""The website (`make docs` → site/), checked as a reader gets it: the HTML loads nothing from
another host, and headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
Selenium) opens every page without a console error, with every picture loaded, and with
framework tabs that switch the code shown.

The site is built and tested in the environment with the `docs` extra (`make test-site`; `make
test` builds it first).  Without the built site, Selenium or Chromium the tests skip with the
reason, except under CI (CI=true) or with NIN_REQUIRE_BROWSER=1, where they fail.
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib.util
import os
import re
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

import nin
from nin.frameworks import backend_package, backend_record

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TUTORIALS = sorted(p.stem for p in (ROOT / "docs").glob("[0-9][0-9]_*.py"))
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("NIN_REQUIRE_BROWSER") == "1"

# Skip reasons (the allow-list of tests/conftest.py names them)
SKIP_NO_DOCS_EXTRA = "website: this environment has no docs extra; the site is built and tested in the current one"
SKIP_NOT_BUILT = "website: site/ is not built (make docs)"
SKIP_NO_CHROMIUM = "website: headless Chromium is not installed (apt-get install chromium chromium-driver)"


def skip_or_fail(reason: str, required: bool = REQUIRED) -> None:
    """Skip with ``reason``, or fail with it where the site must be tested (CI)."""
    if required:
        pytest.fail(f"{reason}; required here (CI=true or NIN_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site() -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip(SKIP_NO_DOCS_EXTRA)
    if not (SITE / "index.html").exists():
        skip_or_fail(SKIP_NOT_BUILT)
    return SITE


def page_paths(site: Path) -> list[str]:
    """Every page of the site, as a path below its root ("" for the home page)."""
    return sorted(p.parent.relative_to(site).as_posix().removeprefix(".") for p in site.rglob("index.html"))


def test_every_tutorial_is_a_page(site):
    pages = page_paths(site)
    assert "" in pages, "no home page"
    missing = [t for t in TUTORIALS if t not in pages]
    assert not missing, f"tutorials without a page in site/: {missing}"


class _Resources(HTMLParser):
    """The URLs a page loads by itself: scripts, styles, pictures, frames, media, fonts."""

    LOADING = {"script": "src", "img": "src", "iframe": "src", "source": "src", "video": "src", "audio": "src",
               "embed": "src", "object": "data", "link": "href"}  # fmt: skip

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        wanted = self.LOADING.get(tag)
        if tag == "link" and not {"stylesheet", "icon", "preload", "modulepreload", "manifest"} & set(
            (attrs.get("rel") or "").split()
        ):
            return  # <link rel="next">: a link, not a load
        if wanted and attrs.get(wanted):
            self.urls.append(attrs[wanted])
        self.urls += re.findall(r"url\(['\"]?([^'\")]+)", attrs.get("style") or "")


def _elsewhere(url: str) -> bool:
    return urlparse(url).scheme in ("http", "https") or url.startswith("//")


def test_site_loads_nothing_from_other_hosts(site):
    """Offline: no page, stylesheet or script of the site loads a font, script, style or
    picture from another host (plain links to papers are allowed: following them is the
    reader's choice)."""
    found = []
    for html in sorted(site.rglob("*.html")):
        parser = _Resources()
        parser.feed(html.read_text(encoding="utf-8"))
        found += [f"{html.relative_to(site)}: {url}" for url in parser.urls if _elsewhere(url)]
    for css in sorted(site.rglob("*.css")):
        text = css.read_text(encoding="utf-8")
        urls = re.findall(r"url\(['\"]?([^'\")]+)", text) + re.findall(r"@import\s+['\"]([^'\"]+)", text)
        found += [f"{css.relative_to(site)}: {url}" for url in urls if _elsewhere(url)]
    assert not found, "the site loads from other hosts:\n" + "\n".join(found)


# -- in the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(site):
    """site/ over HTTP on 127.0.0.1 (a free port), as `python -m http.server -d site` serves it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(site):
    if importlib.util.find_spec("selenium") is None:
        pytest.skip(SKIP_NO_DOCS_EXTRA)
    if not all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)):
        skip_or_fail(SKIP_NO_CHROMIUM)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1440,1000", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(browser, url: str) -> None:
    """Load ``url`` and wait until it and everything it loads have arrived."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )


def requested_hosts(browser) -> set[str]:
    """The hosts of every request the browser sent since the last call (its performance log)."""
    import json

    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlparse(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.hostname)
    return hosts


def test_pages_load_without_errors(site, server, browser):
    """The home page, every tutorial and every other page: no console error, every picture
    loaded (a decoded width), and no request to any host but the local server."""
    problems = []
    for path in page_paths(site):
        url = server + (f"{path}/" if path else "")
        open_page(browser, url)
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        hosts = requested_hosts(browser) - {"127.0.0.1"}
        problems += [f"/{path}: console: {m}" for m in errors]
        problems += [f"/{path}: picture did not load: {src}" for src in broken]
        problems += [f"/{path}: requested another host: {host}" for host in sorted(hosts)]
    assert not problems, "\n".join(problems)


def framework_names(backend: str, file: str) -> set[str]:
    """The names a backend's file binds by importing its framework (``nn``, ``keras``, ``jax``,
    ``mx``, ...): read from the file, with the framework's modules from the backend's record."""
    origin = importlib.util.find_spec(f"{backend_package(backend)}.{file}").origin
    frameworks = set(backend_record(backend).requires)
    names = set()
    for node in ast.walk(ast.parse(Path(origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in frameworks}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in frameworks:
            names |= {a.asname or a.name for a in node.names}
    return names


def source_lines(backend: str, file: str) -> set[str]:
    origin = importlib.util.find_spec(f"{backend_package(backend)}.{file}").origin
    return {line.strip() for line in Path(origin).read_text(encoding="utf-8").splitlines()}


@pytest.mark.parametrize("page,file", [("01_nin_explained", "model"), ("side-by-side", "model")])
def test_framework_tabs_switch_the_code(site, server, browser, page, file, tmp_path):
    """One tab per framework backend of the registry; clicking a tab shows that backend's code:
    lines of its own file that use names its framework's imports bind.  A screenshot of the
    tutorial page's tabs goes to NIN_SITE_SCREENSHOT (make site-screenshot: docs/img/) or a
    temporary folder."""
    from selenium.webdriver.common.by import By

    open_page(browser, f"{server}{page}/")
    tabs = browser.find_elements(By.CSS_SELECTOR, ".tabbed-set")
    assert tabs, f"/{page}/ has no framework tabs"
    first = tabs[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", first)
    labels = first.find_elements(By.CSS_SELECTOR, ".tabbed-labels > label")
    assert [label.text for label in labels] == nin.list_backends()
    shown = {}
    for label in labels:
        label.click()
        blocks = [b for b in first.find_elements(By.CSS_SELECTOR, ".tabbed-block") if b.is_displayed()]
        assert len(blocks) == 1, f"/{page}/ tab {label.text}: {len(blocks)} tab panels visible"
        code = "\n".join(c.text for c in blocks[0].find_elements(By.CSS_SELECTOR, "td.code code, pre > code"))
        backend = label.text
        lines = [line.strip() for line in code.splitlines() if line.strip()]
        assert lines, f"/{page}/ tab {backend} shows no code"
        foreign = [line for line in lines if line not in source_lines(backend, file)]
        assert not foreign, f"/{page}/ tab {backend} shows lines its {file}.py does not hold: {foreign[:3]}"
        idiom = framework_names(backend, file)
        assert any(re.search(rf"\b{re.escape(n)}\b", code) for n in idiom), (
            f"/{page}/ tab {backend}: the code uses none of {sorted(idiom)}, the names its framework's imports bind"
        )
        shown[backend] = code
    assert len(set(shown.values())) == len(shown), f"/{page}/: two tabs show the same code"
    if page == TUTORIALS[0]:  # the last tab stays open; its indicator has long finished moving
        out = Path(os.environ.get("NIN_SITE_SCREENSHOT") or tmp_path / "tabs.png")
        assert browser.save_screenshot(str(out)) and out.stat().st_size > 10_000


# -- the build's link rewriting (no browser) ---------------------------------------------------


@pytest.fixture(scope="module")
def hooks():
    """docs/website/hooks.py, loaded as MkDocs loads it (its folder on sys.path)."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip(SKIP_NO_DOCS_EXTRA)
    folder = str(ROOT / "docs" / "website")
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location("nin_website_hooks", f"{folder}/hooks.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


class _Files:
    """The part of MkDocs' Files the rewriting asks: which site paths exist."""

    def __init__(self, *paths: str):
        self.paths = set(paths)

    def get_file_from_path(self, path: str):
        return path if path in self.paths else None


@pytest.mark.parametrize(
    "page,site_path,link,expected",
    [
        ("README.md", "index.md", "[t](docs/training.md#every-backend-to--97-)", "[t](training.md#every-backend-to--97-)"),
        ("README.md", "index.md", "[c](frameworks/README.md)", "[c](backends.md)"),
        ("README.md", "index.md", "![p](docs/img/x.png)", "![p](img/x.png)"),
        ("README.md", "index.md", "[t](docs/README.md)", "[t](tutorials.md)"),
        ("docs/README.md", "tutorials.md", f"[`t.py`]({TUTORIALS[0]}.py)", f"[`t.py`]({TUTORIALS[0]}.md)"),
        ("docs/README.md", "tutorials.md", "[d](data/)", "[d](results.md)"),
        ("docs/README.md", "tutorials.md", "[w](../README.md#the-website)", "[w](index.md#the-website)"),
        ("examples/README.md", "examples.md", "[r](../docs/training.md#robustness)", "[r](training.md#robustness)"),
        ("docs/training.md", "training.md", "[the\nheap](../common/heap.py)", "the\nheap"),
        ("docs/training.md", "training.md", "[n](nowhere.md)", "[n](nowhere.md)"),
        ("docs/training.md", "training.md", "[n](https://arxiv.org/abs/1312.4400)", "[n](https://arxiv.org/abs/1312.4400)"),
        ("docs/training.md", "training.md", "[a](#robustness)", "[a](#robustness)"),
    ],
)  # fmt: skip
def test_links_written_for_the_repository_point_at_the_site(hooks, page, site_path, link, expected):
    files = _Files("training.md", f"{TUTORIALS[0]}.md", "img/x.png")
    assert hooks.rewrite_links(f"See {link}.\n", page, site_path, files) == f"See {expected}.\n"


def test_links_inside_code_are_left_alone(hooks):
    code = "```python\nx = y[0](docs/training.md)\n```\n````text\n```\n[t](docs/training.md)\n````\n"
    assert hooks.rewrite_links(code, "README.md", "index.md", _Files("training.md")) == code


def test_only_repeated_bench_runs_are_compared(hooks):
    """The results page asks "do A and B agree?" only of runs that repeat one measurement (names
    alike but for the last letter), not of runs of other backends, environments or loads."""
    import pages  # docs/website, on sys.path through the hooks fixture

    names = [
        "idle-a",
        "idle-b",
        "idle-c",
        "jax-current-a",
        "jax-legacy-a",
        "jax-legacy-b",
        "mlx-loaded",
        "paddle-2threads",
    ]
    runs = [Path(f"bench-2026-12-06-{name}.json") for name in names]
    assert pages._repeated_runs(runs) == [(0, 1), (1, 2), (4, 5)]
