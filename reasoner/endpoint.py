"""The SPARQL endpoint's HTTP routes (on :mod:`reasoner.http`); every answer comes from the service object.

Routes
    ``/sparql``: GET ``?query=``, POST form ``query=`` and POST ``application/sparql-query``;
    with no query, the SPARQL 1.1 Service Description. ``format=`` (``json``, ``xml``, ``csv``,
    ``tsv``, ``turtle``, ``ntriples``, ``jsonld``, ``rdfxml`` or a media type) overrides Accept.
    ``/queries`` lists the named queries, ``/queries/{name}`` runs one (``qc/{name}`` too),
    parameters from the query string bound as RDF terms. ``/store`` is the Graph Store
    Protocol's read side. ``/`` is the query page (YASGUI, served from the package).
The backend (dataset, workers, limits) is :mod:`reasoner.serve`'s ``Service``; this module only
speaks HTTP to it.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reasoner import serve
from reasoner.http import HttpServer, HttpSettings, Refused, build_app, check_binding, in_thread, read_body
from reasoner.page import PAGE_PATHS, page, page_routes

MAX_BODY_BYTES = 1024 * 1024

# format= values (as other endpoints accept them) -> the media type they stand for
FORMAT_NAMES = {
    # json and xml name a results format for SELECT/ASK and a graph format for CONSTRUCT/DESCRIBE
    "json": "application/sparql-results+json, application/ld+json",
    "xml": "application/sparql-results+xml, application/rdf+xml", "csv": "text/csv",
    "tsv": "text/tab-separated-values", "turtle": "text/turtle", "ttl": "text/turtle",
    "ntriples": "application/n-triples", "nt": "application/n-triples", "jsonld": "application/ld+json",
    "json-ld": "application/ld+json", "rdfxml": "application/rdf+xml", "nquads": "application/n-quads",
}


def _refused(exc: serve.Refused) -> Refused:
    return Refused(exc.status, exc.message, dict(getattr(exc, "headers", None) or {}))  # e.g. Retry-After on a 503


def _params(request: Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query, keep_blank_values=True)


def _accept(request: Request, params: dict[str, list[str]]) -> str | None:
    """The Accept header, or the media type ``format=`` names (which wins; it is removed from params)."""
    formats = params.pop("format", [])
    if not formats:
        return request.headers.get("accept")
    media = set()
    for given in formats:
        value = given.strip().lower()
        named = FORMAT_NAMES.get(value, value if "/" in value else None)
        if named is None:
            raise Refused(HTTPStatus.BAD_REQUEST, f"format={given[:40]!r} is not one of {', '.join(FORMAT_NAMES)} "
                                                  "or a media type")
        media.add(named)
    if len(media) > 1:  # some clients (SPARQLWrapper) repeat it, as a name and as a media type
        names = [m for m in media if "," in m]
        if not (len(names) == 1 and all(m in names[0] for m in media)):
            raise Refused(HTTPStatus.BAD_REQUEST, "the format= values disagree")
        return names[0]
    return media.pop()


def _base(request: Request, settings: serve.Settings) -> str:
    host = request.headers.get("host") or f"{settings.host}:{settings.port}"
    return f"http://{host}"


def _send(body: bytes, content_type: str) -> Response:
    return Response(body, 200, {"Vary": "Accept"}, content_type)


async def _call(function: Any, *args: Any) -> Any:
    try:
        return await in_thread(function, *args)
    except serve.Refused as exc:
        raise _refused(exc) from None


def make_app(service: serve.Service, http: HttpSettings) -> Any:
    settings = service.settings

    async def sparql(request: Request) -> Response:
        params = _params(request)
        body: bytes | None = None
        if request.method == "POST":
            body = await read_body(request, MAX_BODY_BYTES, http.body_timeout)
            content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
            if content_type == "application/sparql-update":
                raise Refused(HTTPStatus.FORBIDDEN, "this endpoint is read-only: SPARQL Update is not accepted")
            if content_type == "application/x-www-form-urlencoded":
                try:
                    form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
                except UnicodeDecodeError:
                    raise Refused(HTTPStatus.BAD_REQUEST, "the form is not UTF-8") from None
                for key, values in form.items():
                    params.setdefault(key, []).extend(values)
            elif content_type == "application/sparql-query":
                try:
                    params.setdefault("query", []).append(body.decode("utf-8"))
                except UnicodeDecodeError:
                    raise Refused(HTTPStatus.BAD_REQUEST, "the query is not UTF-8") from None
            else:
                raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "POST a form (application/x-www-form-urlencoded) "
                                                                 "or a query (application/sparql-query)")
        if "update" in params or "using-graph-uri" in params or "using-named-graph-uri" in params:
            raise Refused(HTTPStatus.FORBIDDEN, "this endpoint is read-only: SPARQL Update is not accepted")
        if "default-graph-uri" in params or "named-graph-uri" in params:
            raise Refused(HTTPStatus.BAD_REQUEST, "default-graph-uri and named-graph-uri are not allowed: "
                                                  "queries run only over the loaded graphs")
        accept = _accept(request, params)
        queries = params.get("query", [])
        if not queries:
            if body is not None:
                raise Refused(HTTPStatus.BAD_REQUEST, "no query given")
            return await describe(request, accept)
        if len(queries) > 1:
            raise Refused(HTTPStatus.BAD_REQUEST, "give one query")
        answer = await _call(service.answer, queries[0], accept)
        return _send(answer.body, answer.content_type)

    async def describe(request: Request, accept: str | None) -> Response:
        media_type = serve.negotiate(accept, list(serve.GRAPH_TYPES) + ["text/html"])
        if media_type is None:
            raise Refused(HTTPStatus.NOT_ACCEPTABLE,
                          f"the service description can be given as {', '.join(serve.GRAPH_TYPES)}")
        if media_type == "text/html":  # a browser opening /sparql gets the query page
            return await page(request)
        graph = await _call(service.description, _base(request, settings) + "/sparql")
        data = graph.serialize(format=serve.GRAPH_TYPES[media_type])
        return _send(data.encode("utf-8"), media_type + "; charset=utf-8")

    async def query_list(request: Request) -> Response:
        data = json.dumps({"queries": service.query_list(_base(request, settings))}, indent=2).encode("utf-8")
        return _send(data + b"\n", "application/json")

    async def named(request: Request) -> Response:
        name = request.path_params["name"].rstrip("/")
        params = _params(request)
        accept = _accept(request, params)
        query = service.queries.get(name)
        if query is not None and "application/sparql-query" in (accept or "").lower():  # the query's own text
            return _send(query.text.encode("utf-8"), "application/sparql-query; charset=utf-8")
        answer = await _call(service.run_named, name, params, accept)
        return _send(answer.body, answer.content_type)

    async def prefixes(request: Request) -> Response:
        data = json.dumps({"prefixes": await in_thread(service.prefixes)}, indent=2).encode("utf-8")
        return _send(data + b"\n", "application/json")

    async def update(request: Request) -> Response:
        raise Refused(HTTPStatus.FORBIDDEN, "this endpoint is read-only: SPARQL Update is not accepted")

    async def store(request: Request) -> Response:
        """SPARQL 1.1 Graph Store Protocol, read side: ?graph=IRI, ?default, or neither (the whole dataset)."""
        params = _params(request)
        accept = _accept(request, params)
        graphs, default = params.pop("graph", []), params.pop("default", None)
        if params:
            raise Refused(HTTPStatus.BAD_REQUEST, f"unknown parameter {sorted(params)[0]!r}: give graph=IRI or default")
        if len(graphs) > 1 or (graphs and default is not None):
            raise Refused(HTTPStatus.BAD_REQUEST, "give one graph= or default, not both")
        answer = await _call(service.graph_store, graphs[0] if graphs else None, default is not None, accept)
        return _send(answer.body, answer.content_type)

    routes = [
        Route("/sparql", sparql, methods=["GET", "HEAD", "POST"]),
        Route("/sparql/", sparql, methods=["GET", "HEAD", "POST"]),
        Route("/queries", query_list, methods=["GET", "HEAD"]),
        Route("/queries/", query_list, methods=["GET", "HEAD"]),
        Route("/queries/{name:path}", named, methods=["GET", "HEAD"]),
        Route("/store", store, methods=["GET", "HEAD"]),
        Route("/prefixes", prefixes, methods=["GET", "HEAD"]),
        Route("/sparql-update", update, methods=["GET", "HEAD", "POST"]),
        Route("/update", update, methods=["GET", "HEAD", "POST"]),
        *page_routes(),
    ]

    def open_paths(method: str, path: str) -> bool:  # the static page and its assets hold no data
        return method in ("GET", "HEAD") and (path in PAGE_PATHS or path.startswith("/assets/"))

    return build_app(routes, http, open_paths=open_paths)


def http_settings(settings: serve.Settings) -> HttpSettings:
    return HttpSettings(host=settings.host, port=settings.port, token=settings.token, cors=settings.cors,
                        max_body=MAX_BODY_BYTES)


def check_settings(settings: serve.Settings) -> None:
    """Refuse to listen beyond this machine without a bearer token."""
    check_binding(settings.host, bool(settings.token), "the data",
                  "a bearer token (--token or GUIDELINE_KG_TOKEN)")


def make_server(service: serve.Service, http: HttpSettings | None = None) -> HttpServer:
    """The endpoint's HTTP server, bound as the settings say (port 0: a free one, written back to the settings)."""
    check_settings(service.settings)
    http = http or http_settings(service.settings)
    server = HttpServer(make_app(service, http), http)
    service.settings.port = server.address[1]
    return server
