"""`falkit serve`: an HTTP API (FastAPI) over one FalService, with live events and webhooks.

Import :func:`falkit.web.app.create_app` (this package loads FastAPI, so only the serve
command and tests import it). See docs/web.md.
"""
