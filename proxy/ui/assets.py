"""The dashboard's static files, read once: our own (``proxy/ui/static``) and plotly.js.

Charts are drawn by plotly.js, taken from the ``plotly`` Python package (``plotly/package_data/
plotly.min.js``): a well-kept library, installed by pip like any dependency, so the dashboard works with
no internet access and no JavaScript build step, and its version is pinned with the Python ones.

plotly.js injects its stylesheet at load time through a ``<style>`` element, which our CSP (no inline
styles) refuses. It skips that when the page already has an element ``#plotly.js-style-global.no-inline-
styles``, so we serve the same rules as a file (``plotly.css``), read out of the bundle's rule table here.
The bundle also carries MapLibre's stylesheet, injected at load unless an element with a fixed id exists:
``index.html`` gets such an element for each of those guards (we draw no maps, so nothing is lost).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

log = logging.getLogger("efflux.ui")

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The rule table ends with: for(k in T)s=k.replace(/^,/," ,").replace(/X/g,".js-plotly-plot .plotly")...
_RULES_LOOP = re.compile(
    r"for\((\w+) in (\w+)\)\w+=\1\.replace\(/\^,/,\" ,\"\)\.replace\(/X/g,\"([^\"]+)\"\)"
    r"\.replace\(/Y/g,\"([^\"]+)\"\)"
)
_STRING = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_GUARD = re.compile(r'getElementById\("([0-9a-f]{16,})"\)\)\{var \w+=document\.createElement\("style"\)')
GUARDS_MARK = b"<!-- plotly style guards -->"
_ENTRY = re.compile(rf"\s*({_STRING}|[A-Za-z_$][\w$]*)\s*:\s*({_STRING})\s*(,|}})")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, gzip.compress(body, 6), content_type, etag)


def _unquote(token: str) -> str:
    if token[0] in "\"'":
        return token[1:-1].replace("\\" + token[0], token[0]).replace("\\\\", "\\")
    return token


def plotly_css(bundle: str) -> str:
    """plotly.js's own stylesheet, read from the rule table in its bundle ('' if not found)."""
    loop = _RULES_LOOP.search(bundle)
    if loop is None:
        return ""
    table, x_sel, y_sel = loop.group(2), loop.group(3), loop.group(4)
    start = bundle.rfind(f"{table}={{", 0, loop.start())
    if start < 0:
        return ""
    pos, rules = start + len(table) + 2, []
    while (entry := _ENTRY.match(bundle, pos)) is not None:
        selector = _unquote(entry.group(1))
        selector = re.sub(r"^,", " ,", selector).replace("X", x_sel).replace("Y", y_sel)
        rules.append(f"{selector}{{{_unquote(entry.group(2))}}}")
        pos = entry.end()
        if entry.group(3) == "}":
            return "\n".join(rules) + "\n"
    return ""


def load_assets() -> dict[str, Asset]:
    """Every file the dashboard serves, by its path under ``/ui/static/``."""
    assets: dict[str, Asset] = {}
    root = resources.files("proxy.ui") / "static"
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                stack.append((entry, name + "/"))
            elif Path(entry.name).suffix in TYPES:
                assets[name] = _asset(entry.read_bytes(), TYPES[Path(entry.name).suffix])
    spec = importlib.util.find_spec("plotly")
    origin = spec.origin if spec is not None else None
    bundle_path = Path(origin).parent / "package_data" / "plotly.min.js" if origin else None
    if bundle_path is None or not bundle_path.is_file():
        log.warning("the plotly package is not installed: the dashboard shows tables without charts")
        return assets
    bundle = bundle_path.read_bytes()
    assets["vendor/plotly.min.js"] = _asset(bundle, TYPES[".js"])
    css = plotly_css(bundle.decode("utf-8", "replace"))
    if not css:
        log.warning("could not read plotly.js's stylesheet from its bundle: charts may look unstyled")
    assets["vendor/plotly.css"] = _asset(css.encode(), TYPES[".css"])
    guards = "".join(
        f'<meta name="plotly-style-guard" id="{g}">'
        for g in _GUARD.findall(bundle.decode("utf-8", "replace"))
    )
    index = assets["index.html"].body.replace(GUARDS_MARK, guards.encode())
    assets["index.html"] = _asset(index, TYPES[".html"])
    return assets
