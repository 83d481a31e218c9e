"""The web pages for every role and their static files, under one router (mounted by ``app.py``).

Pages are server-rendered shells (Jinja2); small vanilla scripts in ``static/js`` call the JSON API with the
session cookie and the CSRF header. Everything is served from this package: no CDN.
"""

from __future__ import annotations

from fastapi import APIRouter

from carebridge.web import pages
from carebridge.web.assets import STATIC_DIR, SWAGGER_DIR, CachedStaticFiles

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
# Swagger UI for the portal's API reference, from its package (mounted first: /static would take the path)
router.mount("/static/vendor/swagger-ui", CachedStaticFiles(directory=SWAGGER_DIR), name="swagger-ui")
router.mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static")
