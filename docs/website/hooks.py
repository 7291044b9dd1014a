"""MkDocs hooks that make the website (mkdocs.yml; `make docs` builds it into site/).

The site is the repository's own Markdown, with the tutorials executed at build time and the
generated pages of ``pages``:

* ``index.md``: the README; ``tutorials.md``: docs/README.md; ``backends.md``:
  frameworks/README.md; ``examples.md``: examples/README.md; every other page of docs/ as it is;
* ``NN_name.md``: the tutorial docs/NN_name.py, executed (``tutorials``), its pictures under
  ``outputs/``;
* ``side-by-side.md``, ``zoo.md``, ``results.md``: ``pages``.

Links are written for the repository (``docs/training.md`` in the README,
``01_nin_explained.py`` in docs/); each page's links are rewritten to the pages above before
MkDocs checks them, so a link to nothing still fails the build.  A link to a repository file
that the site does not publish (a source file) keeps its text without the link.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sys
import time

import pages
import tutorials
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

import nin
from nin.errors import NinError

log = logging.getLogger("mkdocs.hooks.nin")

ROOT = pages.ROOT
DOCS = ROOT / "docs"
OUTPUTS = "outputs"  # the executed tutorials' pictures

# Markdown files outside docs/ (or renamed) that become pages: repository path -> site path
MOVED = {
    "README.md": "index.md",
    "docs/README.md": "tutorials.md",
    "frameworks/README.md": "backends.md",
    "examples/README.md": "examples.md",
}
GENERATED = {"side-by-side.md": pages.side_by_side, "zoo.md": pages.zoo}
DIRECTORIES = {"docs/data": "results.md"}  # a link to the folder goes to the page that shows it

_repo_path: dict[str, str] = {}  # site path of a page -> its repository path, for its links


def _site_of(repo_path: str, files: Files) -> str | None:
    """The site path of the repository file or folder ``repo_path``, or None if not published."""
    if repo_path in MOVED:
        return MOVED[repo_path]
    if repo_path in DIRECTORIES:
        return DIRECTORIES[repo_path]
    if repo_path.startswith("docs/"):
        inside = repo_path.removeprefix("docs/")
        if inside in {path.name for path in tutorials.tutorials(DOCS)}:
            inside = inside.removesuffix(".py") + ".md"
        if files.get_file_from_path(inside) is not None:
            return inside
    return None


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The navigation: the README, the tutorials, the generated pages, then docs/'s pages in
    the order docs/README.md lists them (any other after them, by name)."""
    listed = re.findall(r"\[`?([\w.-]+\.md)`?\]\(", (DOCS / "README.md").read_text(encoding="utf-8"))
    others = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    docs_pages = [name for name in dict.fromkeys(listed) if name in others]
    docs_pages += [name for name in others if name not in docs_pages]
    config.nav = [
        {"Home": "index.md"},
        {"Tutorials": ["tutorials.md", *(f"{path.stem}.md" for path in tutorials.tutorials(DOCS))]},
        {"Side by side": "side-by-side.md"},
        {"Model zoo": "zoo.md"},
        {"Results": "results.md"},
        {"Pages": docs_pages},
        {"Backend contract": "backends.md"},
        {"Examples": "examples.md"},
    ]
    return config


def _add(files: Files, config: MkDocsConfig, site_path: str, content: str | bytes, repo_path: str = "") -> None:
    files.append(File.generated(config, site_path, content=content))
    if repo_path:
        _repo_path[site_path] = repo_path


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the moved and generated pages and the executed tutorials."""
    readme = files.get_file_from_path("README.md")
    if readme is not None:
        files.remove(readme)
    for repo_path, site_path in MOVED.items():
        _add(files, config, site_path, (ROOT / repo_path).read_text(encoding="utf-8"), repo_path)
    for site_path, make in GENERATED.items():
        _add(files, config, site_path, make(), f"docs/{site_path}")
    markdown, plots = pages.results()
    _add(files, config, "results.md", markdown, "docs/results.md")
    for path, picture in plots.items():
        _add(files, config, path, picture)

    paths = tutorials.tutorials(DOCS)
    jobs = int(os.environ.get("NIN_DOCS_JOBS", os.cpu_count() or 1))
    log.info(f"executing {len(paths)} tutorials, {jobs} at a time")
    start = time.perf_counter()
    try:
        done = tutorials.execute(paths, ROOT, OUTPUTS, jobs)
    except tutorials.TutorialError as e:
        raise PluginError(str(e)) from None
    backends = ", ".join(nin.available_backends()) or "none"
    python = ".".join(map(str, sys.version_info[:3]))
    for path, executed in done.items():
        log.info(f"tutorial {path.name}: {executed.seconds:.1f} s")
        title, _, rest = executed.markdown.partition("\n")
        note = (
            f'!!! info "Executed when this site was built"\n\n    `docs/{path.name}` ran in '
            f"{executed.seconds:.0f} s with Python {python} and the backends installed there ({backends}). "
            f"Run it yourself: `python docs/{path.name}`."
        )
        _add(files, config, f"{path.stem}.md", f"{title}\n\n{note}\n{rest}", f"docs/{path.name}")
        for picture, content in executed.pictures.items():
            _add(files, config, picture, content)
    log.info(f"tutorials executed in {time.perf_counter() - start:.1f} s")
    return files


LINK = re.compile(r"(!?\[(?:[^\]\[]|\[[^\]]*\])*\])\(([^)\s]+)\)")
FENCE = re.compile(r"^(`{3,}|~{3,})")


def rewrite_links(markdown: str, page_repo_path: str, page_site_path: str, files: Files) -> str:
    """The page's relative links, written for the repository, pointed at the site's pages."""
    base = posixpath.dirname(page_repo_path)
    here = posixpath.dirname(page_site_path)

    def rewrite(match: re.Match) -> str:
        text, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group()
        path, hash_, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(base, path))
        site_path = _site_of(repo_path, files)
        if site_path is None:
            if (ROOT / repo_path).exists() and not text.startswith("!"):
                return text[1:-1]  # a repository file the site does not publish
            return match.group()  # MkDocs reports it
        return f"{text}({posixpath.relpath(site_path, here or '.')}{hash_}{anchor})"

    chunks, prose, fence = [], [], ""
    for line in markdown.splitlines(keepends=True):
        stripped = line.strip()
        opening = FENCE.match(stripped)
        if not fence and opening:
            fence = opening.group(1)
        elif fence and stripped.startswith(fence) and set(stripped) == {fence[0]}:
            fence = ""
        elif not fence:
            prose.append(line)
            continue
        chunks += [LINK.sub(rewrite, "".join(prose)), line]
        prose = []
    return "".join([*chunks, LINK.sub(rewrite, "".join(prose))])


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Framework tabs in place of their markers, then links rewritten for the site."""
    site_path = page.file.src_uri
    repo_path = _repo_path.get(site_path, f"docs/{site_path}")
    try:
        markdown = pages.expand_markers(markdown)
    except NinError as e:
        raise PluginError(f"{repo_path}: {e}") from None
    return rewrite_links(markdown, repo_path, site_path, files)
