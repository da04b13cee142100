"""The dashboard's static files: vendored libraries match their pins; no HTML sinks."""

from __future__ import annotations

import re

import pytest

from tierq.dashboard import STATIC_DIR
from tierq.dashboard.vendor import MANIFEST, check, load

#: Ways to turn a string into markup or code; the pages build the DOM node by node instead.
SINKS = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\("
    r"|setAttribute\(\s*[\"'](?:on\w+|style|src)[\"']"
)
#: Links are made by dom.js's link() alone, which builds only "#/..." routes.
HREF = re.compile(r"setAttribute\(\s*[\"']href[\"']|\.href\s*=[^=]")


def test_vendored_files_match_their_pins() -> None:
    packages = load()["packages"]
    assert {p["name"] for p in packages} == {"@dagrejs/dagre", "uplot", "swagger-ui-dist"}
    for package in packages:
        assert package["integrity"].startswith("sha512-")
        assert package["license"] in ("MIT", "Apache-2.0")
        assert any(f["to"] == "LICENSE" for f in package["files"])
    checked = check()
    assert len(checked) == sum(len(p["files"]) for p in packages)
    assert MANIFEST.parent == STATIC_DIR


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(STATIC_DIR) for p in STATIC_DIR.rglob("*.js") if "vendor" not in p.parts),
    ids=str,
)
def test_pages_have_no_html_sinks(path: object) -> None:
    text = (STATIC_DIR / str(path)).read_text()
    assert SINKS.search(text) is None, SINKS.search(text)
    if str(path) != "js/dom.js":
        assert HREF.search(text) is None, HREF.search(text)


def test_html_has_no_inline_script_or_style() -> None:
    for page in STATIC_DIR.glob("*.html"):
        html = page.read_text()
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, page.name
        assert re.search(r"\sstyle=|<style|\son\w+=", html) is None, page.name


def test_the_dashboard_knows_every_event_kind() -> None:
    """api.js lists the kinds it listens for on the feed: an event of a kind missing there
    (such as a lease's ``tasks_assigned``) never reaches a page."""
    from tierq.core.events import EVENT_KINDS

    text = (STATIC_DIR / "js" / "api.js").read_text()
    block = re.search(r"export const EVENT_KINDS = \[(.*?)\];", text, re.S)
    assert block is not None
    assert tuple(re.findall(r'"(\w+)"', block.group(1))) == EVENT_KINDS
