"""The query page the SPARQL endpoint serves at ``/``: static files of the package, nothing from a CDN."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "assets"
PAGE_PATHS = ("/", "/index.html")
# The page's own scripts and styles only; it calls back only to this server.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'")


async def page(request: Request) -> Response:
    return FileResponse(ASSETS / "query.html", media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


def page_routes() -> list[Route | Mount]:
    return [Route("/", page, methods=["GET", "HEAD"]), Route("/index.html", page, methods=["GET", "HEAD"]),
            Mount("/assets", app=StaticFiles(directory=ASSETS), name="assets")]
