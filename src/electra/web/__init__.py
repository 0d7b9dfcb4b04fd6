"""The web app: static pages and their assets (``static/``, served by the API process at ``/``),
the read models the pages show (:mod:`electra.web.views`), the wallet transactions they prepare
(:mod:`electra.web.transactions`) and the signed actions they ask for (:mod:`electra.web.actions`).
See docs/web.md."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"/": "index.html", "/driver": "driver.html", "/host": "host.html", "/dao": "dao.html"}
