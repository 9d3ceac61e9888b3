"""The ASGI application of ``wavebench mos serve`` (Starlette) and the uvicorn runner.

Routes::

    GET  /  /index.html      the packet's page, with the served-mode script (strict CSP)
    GET  /<audio file>       only the files the page plays, and instructions.html
    POST /api/session        assign a list, or resume (the rater's own secret in Authorization)
    POST /api/answers        one trial's answers, stored once (idempotent)
    POST /api/finish         mark the session complete: completion code or redirect
    GET  /admin, /admin/status.json   the study's status, behind the admin token
    GET  /healthz

Nothing else is served: the key and design (``private/``) are outside the packet folder and
never mapped, and a path is looked up in a fixed table of the page's files, so ``..`` or an
encoded variant matches nothing. POST bodies are JSON, at most
:data:`~wavebench.mos.serve.schema.MAX_BODY_BYTES`, checked field by field
(:mod:`~wavebench.mos.serve.schema`), and rate-limited per client address.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import urllib.parse
from dataclasses import dataclass

from wavebench.mos.analysis.ratings import Packet
from wavebench.mos.packet.page import served_index
from wavebench.mos.serve import schema
from wavebench.mos.serve.assignment import DEFAULT_ABANDON_MINUTES
from wavebench.mos.serve.db import StudyDB
from wavebench.mos.serve.schema import Refused
from wavebench_base.errors import InputError, MissingDependencyError

_EXTRA = "pip install 'wavebench[serve]'"
#: Headers on every response.
_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "x-frame-options": "DENY", "cross-origin-resource-policy": "same-origin",
            "cross-origin-opener-policy": "same-origin"}
#: Content-Security-Policy of everything but the page (JSON, audio, the admin page).
_CSP_OTHER = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_TYPES = {".wav": "audio/wav", ".html": "text/html; charset=utf-8"}


def require_serve_extra():
    """Import starlette and uvicorn, or raise one line naming the extra to install."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(f"mos serve needs {err.name}: {_EXTRA}") from None


@dataclass
class Settings:
    """What ``mos serve`` is told besides the packet and the database.

    Attributes
    ----------
    completion_url : str or None
        Where a finished rater is sent (``{code}`` in it becomes the completion code);
        None shows the code instead.
    admin_token : str or None
        The admin page's token; None disables the page.
    abandon_minutes : float
        An unfinished session silent this long frees its list.
    rate_per_s, burst : float
        Per-client token bucket for POST requests (0 turns the limit off).
    """

    completion_url: str | None = None
    admin_token: str | None = None
    abandon_minutes: float = DEFAULT_ABANDON_MINUTES
    rate_per_s: float = 5.0
    burst: float = 30.0


class RateLimit:
    """A token bucket per client address: ``burst`` requests at once, ``rate`` per second after."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict = {}

    def allow(self, client: str) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        if len(self.buckets) > 100_000:  # forget idle clients (their buckets are full again)
            self.buckets = {k: v for k, v in self.buckets.items()
                            if now - v[1] < self.burst / self.rate}
        tokens, last = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            return False
        self.buckets[client] = (tokens - 1, now)
        return True


def _hashes(page: str, tag: str) -> str:
    """CSP source list of the sha256 of each inline ``<tag>`` element that runs (no data)."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
    return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()
                    + "'" for b in bodies)


def page_csp(page: str) -> str:
    """The strict Content-Security-Policy of the served page: its own inline script and style
    (by hash), audio and API calls to this origin only, nothing else."""
    return (f"default-src 'none'; script-src {_hashes(page, 'script')}; "
            f"style-src {_hashes(page, 'style')}; media-src 'self'; connect-src 'self'; "
            "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def public_files(packet: Packet) -> dict:
    """URL path -> file for what the page needs: its audio and ``instructions.html``.

    Every entry must be a regular file inside ``packet/`` (links followed); the private
    folder is beside it, so nothing there can be named.
    """
    folder = (packet.root / "packet").resolve()
    wanted = set(packet.manifest.get("audio", {}).values()) | {"instructions.html"}
    table = {}
    for rel in sorted(wanted):
        path = (folder / rel).resolve()
        if not path.is_relative_to(folder) or ".." in rel.split("/") or rel.startswith("/"):
            raise InputError(f"audio path {rel!r} leaves the packet; refusing to serve it",
                             folder / "manifest.json")
        if path.is_file():
            table["/" + rel] = path
    return table


def create_app(packet: Packet, db: StudyDB, settings: Settings = Settings()):
    """The Starlette application serving ``packet`` with answers stored in ``db``.

    Parameters
    ----------
    packet : Packet
        The packet (its key verified; the key is used for checks, never served).
    db : StudyDB
        The study database (created by :class:`~wavebench.mos.serve.db.StudyDB`).
    settings : Settings

    Returns
    -------
    starlette.applications.Starlette

    Raises
    ------
    MissingDependencyError
        Starlette is not installed.
    InputError
        The packet's ``index.html`` is missing or not a page this wavebench wrote.
    """
    require_serve_extra()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from wavebench.mos.serve.status import status_html, study_status

    index = packet.root / "packet" / "index.html"
    if not index.is_file():
        raise InputError("no index.html in the packet", index)
    try:
        page = served_index(index.read_text(encoding="utf-8"),
                            {"api": "api/", "platform": "wavebench-serve"})
    except ValueError as err:
        raise InputError(str(err), index) from None
    page_bytes, csp = page.encode("utf-8"), page_csp(page)
    files = public_files(packet)
    limiter = RateLimit(settings.rate_per_s, settings.burst)
    timeout_s = settings.abandon_minutes * 60.0

    def error(err: Refused) -> JSONResponse:
        body = {"error": str(err)}
        if getattr(err, "missing", None):
            body["missing"] = err.missing
        return JSONResponse(body, err.status, headers={"cache-control": "no-store"})

    async def read_json(request: Request) -> dict:
        """The body as a JSON object: size, type, rate and syntax checked first."""
        client = request.client.host if request.client else ""
        if not limiter.allow(client):
            raise Refused(429, "too many requests; slow down")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Refused(415, "send the body as application/json")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit()
                                     or int(declared) > schema.MAX_BODY_BYTES):
            raise Refused(413, f"body larger than {schema.MAX_BODY_BYTES} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > schema.MAX_BODY_BYTES:
                raise Refused(413, f"body larger than {schema.MAX_BODY_BYTES} bytes")
        return schema.parse_body(bytes(raw))

    def completion(code: str) -> dict:
        url = settings.completion_url
        if url:
            url = url.replace("{code}", urllib.parse.quote(code))
        return {"completion_code": code, "redirect": url}

    async def api_session(request: Request):
        try:
            body = await read_json(request)
            ident = schema.identity(body)
            token = schema.bearer(request.headers.get("authorization"))
            row, new, responses = await run_in_threadpool(
                db.start_session, ident, token, now=time.time(), timeout_s=timeout_s)
        except Refused as err:
            return error(err)
        out = {"session_id": row["session_id"], "list_id": row["list_id"],
               "responses": responses, "completed": bool(row["completed"]), "new": new}
        if row["completed"]:
            out.update(completion(row["completion_code"]))
        return JSONResponse(out, headers={"cache-control": "no-store"})

    async def authorized(request: Request, what: str) -> tuple[dict, dict]:
        """The checked body of a request on a session, and that session if the request
        carries its secret."""
        body = await read_json(request)
        token = schema.bearer(request.headers.get("authorization"))
        if not isinstance(body.get("session_id"), str):
            raise Refused(422, f"{what} request: session_id must be a string")
        return body, await run_in_threadpool(db.authorize, body["session_id"], token)

    async def api_answers(request: Request):
        try:
            body, session = await authorized(request, "answers")
            given = schema.answers(body, packet, session["list_id"])
            status = await run_in_threadpool(db.record_answers, session, given,
                                             now=time.time())
        except Refused as err:
            return error(err)
        return JSONResponse({"status": status}, headers={"cache-control": "no-store"})

    async def api_finish(request: Request):
        try:
            body, session = await authorized(request, "finish")
            meta = schema.finish(body)
            code, same = await run_in_threadpool(db.finish, session, meta, body["checksum"],
                                                 now=time.time())
        except Refused as err:
            return error(err)
        return JSONResponse(dict(completion(code), checksum_match=same),
                            headers={"cache-control": "no-store"})

    def admin_ok(request: Request) -> bool:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "basic":  # a browser's login prompt: any user, token as password
            try:
                value = base64.b64decode(value, validate=True).decode().partition(":")[2]
            except ValueError:
                value = ""
        elif scheme.lower() != "bearer":
            value = ""
        wanted = settings.admin_token
        return bool(wanted) and hmac.compare_digest(value.encode(), wanted.encode())

    async def admin(request: Request):
        if not admin_ok(request):
            return Response("admin token required\n", 401, media_type="text/plain",
                            headers={"www-authenticate": 'Basic realm="wavebench admin"'})
        status = await run_in_threadpool(study_status, db, timeout_s=timeout_s)
        if request.url.path.endswith(".json"):
            return JSONResponse(status, headers={"cache-control": "no-store"})
        return HTMLResponse(status_html(status), headers={"cache-control": "no-store"})

    async def index_page(request: Request):
        return Response(page_bytes, media_type="text/html; charset=utf-8",
                        headers={"content-security-policy": csp, "cache-control": "no-store"})

    async def static(request: Request):
        path = files.get(request.url.path)
        if path is None:
            return Response("not found\n", 404, media_type="text/plain")
        return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"))

    async def healthz(request: Request):
        return JSONResponse({"ok": True, "packet_id": packet.packet_id})

    routes = [Route("/", index_page), Route("/index.html", index_page),
              Route("/healthz", healthz),
              Route("/api/session", api_session, methods=["POST"]),
              Route("/api/answers", api_answers, methods=["POST"]),
              Route("/api/finish", api_finish, methods=["POST"]),
              Route("/admin", admin), Route("/admin/status.json", admin),
              Route("/{path:path}", static)]
    return SecurityHeaders(Starlette(routes=routes))


class SecurityHeaders:
    """ASGI middleware: the headers of :data:`_HEADERS` on every response, and the strict
    default CSP on any response that has none of its own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()
                            if k.encode() not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", _CSP_OTHER.encode()))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def serve(packet: Packet, db_path, *, host: str = "127.0.0.1", port: int = 8080,
          settings: Settings = Settings(), log=print) -> None:
    """Run the study server until interrupted (``wavebench mos serve``).

    Parameters
    ----------
    packet : Packet
    db_path : str or os.PathLike
        The study database; created when missing, carried on when it exists.
    host, port
        Where to listen; the default binds to this machine only (put a TLS reverse proxy in
        front for a public study).
    settings : Settings
    log : callable
        Receives the startup lines.
    """
    require_serve_extra()
    import uvicorn

    db = StudyDB(db_path, packet, create=True)
    app = create_app(packet, db, settings)
    counts = db.counts(now=time.time(), timeout_s=settings.abandon_minutes * 60)
    log(f"packet {packet.packet_id}: {len(packet.manifest['lists'])} lists; database {db_path} "
        f"({counts['started']} sessions, {counts['completed']} completed)")
    log(f"serving on http://{host}:{port}/?rater=ID (or ?PROLIFIC_PID=...); admin page "
        + ("/admin" if settings.admin_token else "off (no --admin-token)"))
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                    proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    finally:
        db.close()
