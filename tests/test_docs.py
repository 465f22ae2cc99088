"The documentation build's cross-reference check: it must find links that lead nowhere, and pass good ones."
import importlib.util
from pathlib import Path

from conftest import REPO

spec = importlib.util.spec_from_file_location("build_docs", REPO / "tools" / "build_docs.py")
build_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_docs)
SITE = "https://example.org/project"


def write_site(root: Path, links: str):
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text(f'<h1 id="Home">home</h1>{links}')
    (root / "analysis.html").write_text('<h3 id="token_masking_matrix">token_masking_matrix</h3>')
    (root / "sub" / "page.html").write_text('<a href="../index.html#home">up</a>')


def test_good_links_pass(tmp_path):
    write_site(tmp_path, f'<a href="analysis.html#token_masking_matrix">a</a><a href="{SITE}/analysis.html#token_masking_matrix">b</a>'
                         '<a href="sub/page.html">c</a><a href="https://pytorch.org/docs">external</a><a href="#home">self</a>')
    assert build_docs.broken_links(tmp_path, SITE) == []


def test_missing_pages_and_anchors_are_reported(tmp_path):
    write_site(tmp_path, f'<a href="nowhere.html">a</a><a href="{SITE}/analysis.html#knn_vote">b</a><a href="#missing">c</a>')
    broken = sorted((href, why) for _, href, why in build_docs.broken_links(tmp_path, SITE))
    assert broken == [("#missing", "no anchor #missing"), (f"{SITE}/analysis.html#knn_vote", "no anchor #knn_vote"), ("nowhere.html", "no such page")]


def test_pages_are_named_as_quarto_names_them():
    assert build_docs.page_name(Path("nbs/06_analysis.ipynb")) == "analysis.html"
    assert build_docs.page_name(Path("nbs/explorer.ipynb")) == "explorer.html"
