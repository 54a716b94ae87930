"""leaderboard.html without a browser: self-contained, and inert whatever the records say.

Names in records come from suites, plugins and strangers; here they carry markup and
script. The page must show them as text, contain exactly the one script tlbench wrote,
and load nothing from anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest
from test_report_aggregate import RecordSet

from tlbench.report import build_report

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '"><img src=x onerror="window.__pwned = 2">'
MATH = "$\\frac{1}{0}$ $x"


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of each script and style."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.text.append(data)


def hostile_records() -> RecordSet:
    rs = RecordSet(host=f"host{SCRIPT}")
    for seed in range(2):
        rs.baseline(f"t{SCRIPT}", seed, 0.5)
        rs.run(f"src{SCRIPT}", f"strat{IMG}", f"t{SCRIPT}", seed, 0.4 + 0.01 * seed)
        rs.run(f"src {MATH}", "lp & <b>bold</b>", f"t{SCRIPT}", seed, 0.7)
        rs.run("plain", "lp", f"t{SCRIPT}", seed, None, status="error")
    for record in rs.records.values():
        if record["error"]:
            record["error"]["message"] = f"failed {SCRIPT}"
    return rs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    report = build_report([hostile_records().write(root / "in")], root / "out", title=f"title {SCRIPT}")
    page = Page()
    html = (root / "out" / "leaderboard.html").read_text(encoding="utf-8")
    page.feed(html)
    return report, html, page


def test_names_render_as_text_not_markup(built):
    report, html, page = built
    assert SCRIPT not in html and "<img src=x" not in html and "<b>bold" not in html
    text = "".join(page.text)
    for name in (f"src{SCRIPT}", f"strat{IMG}", "lp & <b>bold</b>", f"t{SCRIPT}", f"host{SCRIPT}",
                 f"failed {SCRIPT}", f"title {SCRIPT}"):
        assert name in text, name  # shown to the reader, verbatim
    assert [tag for tag, _ in page.tags].count("script") == 1
    assert [tag for tag, _ in page.tags].count("b") == 0
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")


def test_markdown_is_inert_too(built):
    report, _, _ = built
    assert "<script" not in report.markdown and "<img" not in report.markdown and "<b>" not in report.markdown
    assert "&lt;script&gt;" in report.markdown


def test_page_is_self_contained(built):
    _, html, page = built
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "object", "embed", "base"), tag
        for name in ("src", "href", "action", "srcset"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, name, value[:60])
    assert not re.search(r"url\(", "".join(page.styles))
    assert "http://" not in "".join(page.scripts) + "".join(page.styles)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2  # accuracy and negative-transfer figures (the size does not vary)
    for src in images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_content_security_policy_allows_only_the_page_itself(built):
    _, _, page = built
    policy = next(attrs["content"] for tag, attrs in page.tags
                  if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"

    def digest(source: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"

    assert directives["script-src"] == digest(page.scripts[0])
    assert directives["style-src"] == digest(page.styles[0])


def test_tables_are_sortable_with_numeric_keys(built):
    _, _, page = built
    tables = [attrs for tag, attrs in page.tags if tag == "table"]
    assert {"overall-table", "target-0", "failures", "machines"} <= {t["id"] for t in tables}
    assert all("sortable" in t["class"] for t in tables)
    headers = [attrs for tag, attrs in page.tags if tag == "th"]
    assert {h["data-type"] for h in headers} == {"number", "text"}


def test_task_and_metric_names_are_inert_too(tmp_path):
    """Headers, headings, captions and figure ids name the task and its metric, which
    come from records like every other name."""
    metric = "m$x$|`<b>x</b>"
    task = {"name": f"task{SCRIPT}", "version": "1", "headline": metric,
            "metrics": [{"name": metric, "higher_is_better": False, "low": None, "high": None, "description": ""}]}
    rs = RecordSet(tasks={"h1": task})
    for seed in range(2):
        rs.baseline("h1", seed, 1.0)
        rs.baseline("t1", seed, 0.5)
        rs.run("a", "lp", "h1", seed, 2.0 + seed)
        rs.run("a", "lp", "t1", seed, 0.7)
    build_report([rs.write(tmp_path / "in")], tmp_path / "out")
    html = (tmp_path / "out" / "leaderboard.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    assert SCRIPT not in html and "<b>x" not in html
    assert [tag for tag, _ in page.tags].count("script") == 1 and [tag for tag, _ in page.tags].count("b") == 0
    text = "".join(page.text)
    assert f"Task type: task{SCRIPT} — headline {metric} (lower is better)" in text
    assert f"test {metric} (mean ± std)" in text
    ids = [attrs["id"] for _, attrs in page.tags if "id" in attrs]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[A-Za-z0-9-]+", i) for i in ids), ids
    markdown = (tmp_path / "out" / "leaderboard.md").read_text(encoding="utf-8")
    assert "<script" not in markdown and "<b>" not in markdown
    assert "## Task type: task&lt;script&gt;" in markdown and "test m$x$\\|\\`&lt;b&gt;x&lt;/b&gt; (mean ± std)" in markdown
