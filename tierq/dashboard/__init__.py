"""The web dashboard: static pages served by the API at ``/``, live over the event feed.

The pages are plain ES modules under ``static/`` (no build step); the JavaScript libraries
they use are vendored under ``static/vendor/`` with their licences, pinned in
``static/vendor.json`` and re-fetched from the npm registry by ``python -m
tierq.dashboard.vendor``. :func:`install` adds what the pages need from the API besides
``/v1``: token login into a session cookie with CSRF protection, drains, and a strict CSP.
"""

from .routes import STATIC_DIR as STATIC_DIR
from .routes import install as install

__all__ = ["STATIC_DIR", "install"]
