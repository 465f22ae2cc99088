"""Build the documentation site from the notebooks and fail on broken cross-references.

With Quarto on the PATH this is nbdev's own build (`nbdev_docs`, Quarto). Without it (Quarto's PyPI package,
`quarto-cli`, downloads its binary from GitHub while it installs, which offline machines cannot do), the
notebooks that nbdev has processed (`nbdev_proc_nbs`: API docs from `show_doc`, backticked names turned into
links) are rendered to HTML with nbconvert, one page per notebook named as Quarto names them.

Then every link of every page is checked: links inside the site (relative, or under the site's URL from
settings.ini) must point to a page that exists and, when they name an anchor, to an element with that id.

    python tools/build_docs.py            # build into _docs/ and check
    python tools/build_docs.py --check    # only check an existing _docs/
"""
from __future__ import annotations

import argparse
import configparser
import html.parser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlparse

ROOT = Path(__file__).resolve().parents[1]


def settings() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "settings.ini")
    return parser["DEFAULT"]


def page_name(notebook: Path) -> str:
    "The page Quarto writes for a notebook: its path without the numeric prefix, as .html."
    return re.sub(r"^\d+_", "", notebook.stem) + ".html"


def process_notebooks():
    "What `nbdev_proc_nbs` does, minus its attempt to install Quarto (with sudo, and the project with the PATH's pip)."
    import os
    from nbdev.config import get_config
    from nbdev.doclinks import _build_modidx
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
    from nbdev.serve import proc_nbs
    os.chdir(ROOT)
    nbs_path = get_config().nbs_path
    refresh_quarto_yml(); _build_modidx()
    nbdev_sidebar.__wrapped__(path=nbs_path)
    proc_nbs(nbs_path, n_workers=2)


def render_without_quarto(proc_dir: Path, docs_dir: Path) -> list:
    "nbconvert every processed notebook to `docs_dir`; `.ipynb` links become the pages they stand for."
    from nbconvert import HTMLExporter
    import nbformat
    exporter = HTMLExporter(template_name="lab")
    pages = []
    for notebook in sorted(proc_dir.rglob("*.ipynb")):
        if any(part.startswith((".", "_")) for part in notebook.relative_to(proc_dir).parts[:-1]): continue
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
        body = re.sub(r'href="((?:\.\./)*[\w./-]*?)(\d+_)?([\w-]+)\.ipynb(#[^"]*)?"', lambda m: f'href="{m[1]}{m[3]}.html{m[4] or ""}"', body)
        out = docs_dir / notebook.parent.relative_to(proc_dir) / page_name(notebook)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body)
        pages.append(out)
    return pages


class Links(html.parser.HTMLParser):
    "Collects the hrefs and the element ids of a page."
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        # Quarto lower-cases heading ids and nbdev's links do too; nbconvert keeps the case
        if attrs.get("id"): self.ids.add(attrs["id"].lower())
        if tag == "a" and attrs.get("name"): self.ids.add(attrs["name"].lower())
        if tag == "a" and attrs.get("href"): self.hrefs.append(attrs["href"])


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(errors="replace"))
    return links


def broken_links(docs_dir: Path, site_url: str) -> list:
    "`(page, href, why)` for every link inside the site that leads nowhere."
    pages = {p.resolve(): parse(p) for p in docs_dir.rglob("*.html")}
    site = site_url.rstrip("/") + "/"
    broken = []
    for page, links in pages.items():
        for href in links.hrefs:
            if href.startswith(site):
                path, anchor = urldefrag(href[len(site):])
                file = (docs_dir / path).resolve() if path else docs_dir.resolve() / "index.html"
            elif urlparse(href).scheme or href.startswith(("//", "mailto:", "javascript:")): continue
            else:
                path, anchor = urldefrag(href)
                file = (page.parent / path).resolve() if path else page
            if file.is_dir(): file = file / "index.html"
            if file.suffix not in ("", ".html"):
                if not file.exists(): broken.append((page, href, "no such file"))
                continue
            if file not in pages: broken.append((page, href, "no such page")); continue
            if anchor and anchor.lower() not in pages[file].ids: broken.append((page, href, f"no anchor #{anchor}"))
    return broken


def main(argv=None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="only check the links of an existing site")
    opts = args.parse_args(argv)
    cfg = settings()
    docs_dir = ROOT / cfg.get("doc_path", "_docs")
    site_url = cfg["doc_host"].rstrip("/") + cfg.get("doc_baseurl", "")
    if not opts.check:
        bin_dir = Path(sys.executable).parent
        if shutil.which("quarto"):
            subprocess.run([str(bin_dir / "nbdev_docs")], cwd=ROOT, check=True)
            print("docs: built with Quarto (nbdev_docs)")
        else:
            process_notebooks()
            shutil.rmtree(docs_dir, ignore_errors=True)
            pages = render_without_quarto(ROOT / "_proc", docs_dir)
            print(f"docs: Quarto not found, rendered {len(pages)} pages with nbconvert into {docs_dir.relative_to(ROOT)}/")
    broken = broken_links(docs_dir, site_url)
    for page, href, why in broken: print(f"broken cross-reference in {page.relative_to(docs_dir)}: {href} ({why})")
    n_pages = len(list(docs_dir.rglob("*.html")))
    if not n_pages: print("docs: no pages were built"); return 1
    print(f"docs: {n_pages} pages, {len(broken)} broken cross-references")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
