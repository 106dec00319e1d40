"""The dashboard's static files (``proxy/ui/static``), read once and gzipped once.

The charts are plain SVG drawn by our own ``js/charts.js``: no chart library, nothing to download, no
build step, and nothing in the base install that only the dashboard needs.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def _asset(body: bytes, content_type: str) -> Asset:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, gzip.compress(body, 6), content_type, etag)


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
    return assets
