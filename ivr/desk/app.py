"""`ivr desk`: the agents' and supervisors' web application (Starlette, server-rendered).

Pages are Jinja templates with autoescaping on (caller speech is untrusted text); the live
queue, the case and the board update through one Server-Sent Events stream fed from the
store's ``desk_events`` table, which `ivr serve` writes from another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.agents.cases import CallbackStatus, CaseDesk, CaseOutcome, CaseStatus
from ivr.agents.directory import Agent, AgentState, Directory
from ivr.agents.report import calls_csv, day_bounds, day_report, live_board, today
from ivr.desk.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL_S,
    LoginThrottle,
    Session,
    Sessions,
    same,
)
from ivr.desk.events import EventFeed
from ivr.services.codes import SmsOutbox
from ivr.services.privacy import scrub
from ivr.services.store import Store
from ivr.services.tickets import TEAMS, TicketError, Tickets

log = logging.getLogger(__name__)

HERE: Final = Path(__file__).parent
HEARTBEAT_S: Final = 15.0
SECURITY_HEADERS: Final = (
    (b"content-security-policy", b"default-src 'self'; media-src 'self'; frame-ancestors 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
T = TypeVar("T")


class Denied(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class SecurityHeaders:
    """Pure ASGI middleware: the same protective headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + list(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = int(value)
    return f"{value // 60}:{value % 60:02d}"


class Desk:
    def __init__(self, store: Store, *, secure_cookies: bool = False) -> None:
        self.store = store
        self.directory = Directory(store)
        self.cases = CaseDesk(store)
        self.sessions = Sessions(store, self.directory)
        self.throttle = LoginThrottle()
        self.tickets = Tickets(store, SmsOutbox(store))
        self.secure_cookies = secure_cookies
        self.feed = EventFeed(self.cases)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self.env.filters["mmss"] = _fmt_seconds
        self.env.filters["scrub"] = lambda v: scrub(str(v)) if v is not None else ""

    # --- plumbing ----------------------------------------------------------------------------
    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    def render(self, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**ctx), status_code=status)

    async def session(self, request: Request) -> Session | None:
        return await self.db(self.sessions.get, request.cookies.get(SESSION_COOKIE))

    async def api_agent(self, request: Request) -> Agent:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            agent = await self.db(self.directory.by_token, auth[7:].strip())
            if agent is not None:
                return agent
            raise Denied(401, "unknown or revoked token")
        session = await self.session(request)
        if session is None:
            raise Denied(401, "log in, or send Authorization: Bearer TOKEN")
        return session.agent

    async def page_session(self, request: Request, *, supervisor: bool = False) -> Session:
        session = await self.session(request)
        if session is None:
            raise Denied(401, "login")
        if supervisor and not session.agent.is_supervisor:
            raise Denied(403, "supervisors only")
        return session

    async def form(self, request: Request, *, supervisor: bool = False) -> tuple[Session, Any]:
        """A posted form from a logged-in person, with the right CSRF token (else 403)."""
        session = await self.page_session(request, supervisor=supervisor)
        form = await request.form()
        if not same(str(form.get("csrf") or ""), session.csrf):
            raise Denied(403, "the form has expired or did not come from the desk; reload")
        return session, form

    async def on_denied(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Denied)
        wants_html = "text/html" in request.headers.get("accept", "")
        api = request.url.path.startswith(("/api/", "/events", "/fragments/"))
        if exc.status == 401 and wants_html and not api and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        if api or not wants_html:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return self.render("error.html", exc.status, code=exc.status, message=str(exc))

    def _cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            path="/",
        )

    # --- log-in --------------------------------------------------------------------------------
    async def login_page(
        self, request: Request, error: str | None = None, status: int = 200
    ) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = self.render("login.html", status, csrf=token, error=error)
        self._cookie(response, LOGIN_CSRF_COOKIE, token, 3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form()
        if not same(str(form.get("csrf") or ""), request.cookies.get(LOGIN_CSRF_COOKIE)):
            raise Denied(403, "the log-in form has expired; reload the page")
        name = str(form.get("name") or "")[:100]
        password = str(form.get("password") or "")
        address = request.client.host if request.client else "unknown"
        wait = self.throttle.begin(name, address)
        if wait > 0:
            response = await self.login_page(request, "Too many attempts. Try again later.", 429)
            response.headers["retry-after"] = str(int(wait) + 1)
            return response
        agent = await self.db(self.directory.check_password, name, password)
        if agent is None:
            log.info("failed desk log-in for %r from %s", name, address)
            return await self.login_page(request, "Wrong name or password.", 401)
        self.throttle.succeeded(name, address)
        sid, _ = await self.db(self.sessions.open, agent)
        await self.db(self.cases.record, agent.id, "login", address)
        response = RedirectResponse("/supervisor" if agent.is_supervisor else "/", status_code=303)
        self._cookie(response, SESSION_COOKIE, sid, SESSION_TTL_S)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        session, _ = await self.form(request)
        await self.db(self.sessions.close, request.cookies.get(SESSION_COOKIE))
        if not await self.db(self.sessions.logged_in, session.agent.id):
            await self.db(self.directory.set_state, session.agent.id, AgentState.AWAY)
        await self.db(self.cases.record, session.agent.id, "logout")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- the queue -----------------------------------------------------------------------------
    async def queue_page(self, request: Request) -> Response:
        session = await self.page_session(request)
        seen = await self.db(self.cases.last_event)
        ctx = await self.db(self._queue_context)
        me = await self.db(self.directory.get, session.agent.id)
        return self.render(
            "queue.html", me=me, csrf=session.csrf, states=list(AgentState), seen=seen, **ctx
        )

    def _queue_context(self) -> dict[str, Any]:
        return {
            "waiting": self.cases.cases(CaseStatus.WAITING),
            "claimed": self.cases.cases(CaseStatus.CLAIMED, limit=100),
        }

    async def queue_fragment(self, request: Request) -> Response:
        await self.api_agent(request)
        ctx = await self.db(self._queue_context)
        return self.render("_queue.html", **ctx)

    async def set_state(self, request: Request) -> Response:
        session, form = await self.form(request)
        try:
            state = AgentState(str(form.get("state")))
        except ValueError as exc:
            raise Denied(400, "unknown state") from exc
        await self.db(self.directory.set_state, session.agent.id, state)
        return RedirectResponse("/", status_code=303)

    async def events(self, request: Request) -> Response:
        """Server-Sent Events: one ``change`` event per row of ``desk_events``."""
        await self.api_agent(request)
        after = self._events_after(request)
        queue = self.feed.subscribe()  # before the replay: nothing falls between the two

        def change(event: dict[str, Any]) -> str:
            return f"id: {event['id']}\nevent: change\ndata: {json.dumps(event)}\n\n"

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                last = 0
                if after is not None:  # what happened since the page was made, or since the drop
                    for missed in await self.db(self.feed.missed, after):
                        last = int(missed["id"])
                        yield change(missed)
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:
                        return
                    if int(event["id"]) > last:
                        yield change(event)
            finally:
                self.feed.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @staticmethod
    def _events_after(request: Request) -> int | None:
        """Where a stream resumes: the browser's ``Last-Event-ID`` when it reconnects, else the
        event the page was made at (``?after=``); None for the live events only."""
        raw = request.headers.get("last-event-id") or request.query_params.get("after")
        if raw is None or raw == "":
            return None
        if not re.fullmatch(r"[0-9]{1,18}", raw):
            raise Denied(400, f"expected an event id, got {raw[:20]!r}")
        return int(raw)

    # --- a case --------------------------------------------------------------------------------
    async def case_page(self, request: Request, *, number: str | None = None) -> Response:
        session = await self.page_session(request)
        queue_id = int(request.path_params["case_id"])
        seen = await self.db(self.cases.last_event)
        detail = await self.db(self.cases.detail, queue_id)
        if detail is None:
            raise Denied(404, "no such case")
        return self.render(
            "case.html",
            seen=seen,
            me=session.agent,
            csrf=session.csrf,
            d=detail,
            number=number,
            outcomes=list(CaseOutcome),
            teams=TEAMS,
        )

    async def case_status(self, request: Request) -> Response:
        agent = await self.api_agent(request)
        detail = await self.db(self.cases.detail, int(request.path_params["case_id"]))
        if detail is None:
            raise Denied(404, "no such case")
        return self.render("_case_status.html", d=detail, me=agent)

    async def claim(self, request: Request) -> Response:
        session, _ = await self.form(request)
        queue_id = int(request.path_params["case_id"])
        if not await self.db(self.cases.claim, queue_id, session.agent):
            raise Denied(409, "this case is not waiting: another agent has it")
        await self.db(
            self.directory.set_state,
            session.agent.id,
            AgentState.ON_CALL,
            only_from=(AgentState.AVAILABLE, AgentState.WRAP_UP, AgentState.AWAY),
        )
        return RedirectResponse(f"/cases/{queue_id}", status_code=303)

    async def reveal(self, request: Request) -> Response:
        session, _ = await self.form(request)
        queue_id = int(request.path_params["case_id"])
        number = await self.db(self.cases.reveal, queue_id, session.agent)
        if number is None:
            raise Denied(403, "only the agent who holds the case sees the caller's number")
        return await self.case_page(request, number=number)

    async def note(self, request: Request) -> Response:
        session, form = await self.form(request)
        queue_id = int(request.path_params["case_id"])
        holder = await self.db(self.cases.holder, queue_id)
        if holder != session.agent.id and not session.agent.is_supervisor:
            raise Denied(403, "claim the case first")
        text = str(form.get("text") or "").strip()[:4000]
        if text:
            await self.db(self.cases.add_note, queue_id, session.agent, text)
        return RedirectResponse(f"/cases/{queue_id}", status_code=303)

    async def resolve(self, request: Request) -> Response:
        session, form = await self.form(request)
        queue_id = int(request.path_params["case_id"])
        try:
            outcome = CaseOutcome(str(form.get("outcome")))
        except ValueError as exc:
            raise Denied(400, "unknown outcome") from exc
        if not await self.db(self.cases.resolve, queue_id, session.agent, outcome):
            raise Denied(409, "only the agent who holds a claimed case can resolve it")
        return RedirectResponse("/", status_code=303)

    async def ticket(self, request: Request) -> Response:
        session, form = await self.form(request)
        queue_id = int(request.path_params["case_id"])
        if await self.db(self.cases.holder, queue_id) != session.agent.id:
            raise Denied(403, "claim the case first")
        detail = await self.db(self.cases.detail, queue_id)
        assert detail is not None
        team = str(form.get("team") or "")
        summary = str(form.get("summary") or "").strip()[:2000]
        try:
            if detail.ticket_number:
                await self.db(
                    self.tickets.update,
                    detail.ticket_number,
                    status=str(form.get("status") or "") or None,
                    note=summary or "updated from the desk",
                )
            else:
                caller = await self.db(self.cases.caller_number, queue_id)
                ticket = await self.db(
                    self.tickets.create,
                    team,
                    {"case": queue_id, "reason": detail.summary.reason, "summary": summary},
                    caller=caller,
                    locale=detail.summary.locale or "en-US",
                    call_id=detail.summary.call_id,
                )
                await self.db(self.cases.link_ticket, queue_id, session.agent, ticket.number)
        except TicketError as exc:
            raise Denied(400, str(exc)) from exc
        return RedirectResponse(f"/cases/{queue_id}", status_code=303)

    async def feedback_audio(self, request: Request) -> Response:
        await self.page_session(request)
        path = await self.db(self.cases.feedback_audio, int(request.path_params["feedback_id"]))
        if not path or not await self.db(Path(path).is_file):
            raise Denied(404, "no recording")
        return FileResponse(path, media_type="audio/wav")

    # --- callbacks -----------------------------------------------------------------------------
    async def callbacks_page(self, request: Request) -> Response:
        session = await self.page_session(request)
        seen = await self.db(self.cases.last_event)
        items = await self.db(self.cases.callbacks)
        return self.render(
            "callbacks.html", me=session.agent, csrf=session.csrf, items=items, seen=seen
        )

    async def callback_done(self, request: Request) -> Response:
        session, form = await self.form(request)
        try:
            status = CallbackStatus(str(form.get("status")))
            if status is CallbackStatus.PENDING:
                raise ValueError(status)
        except ValueError as exc:
            raise Denied(400, "expected done or failed") from exc
        queue_id = int(request.path_params["case_id"])
        note = str(form.get("note") or "").strip()[:2000]
        if not await self.db(self.cases.finish_callback, queue_id, session.agent, status, note):
            raise Denied(409, "this callback is already closed")
        return RedirectResponse("/callbacks", status_code=303)

    # --- supervisor ----------------------------------------------------------------------------
    def _day(self, request: Request) -> str:
        day = request.query_params.get("day") or today()
        try:
            day_bounds(day)
        except ValueError as exc:
            raise Denied(400, str(exc)) from exc
        return day

    async def supervisor_page(self, request: Request) -> Response:
        session = await self.page_session(request, supervisor=True)
        day = self._day(request)
        seen = await self.db(self.cases.last_event)
        board = await self.db(live_board, self.store)
        report = await self.db(day_report, self.store, day)
        return self.render(
            "supervisor.html",
            me=session.agent,
            csrf=session.csrf,
            board=board,
            r=report,
            day=day,
            seen=seen,
        )

    async def board_fragment(self, request: Request) -> Response:
        agent = await self.api_agent(request)
        if not agent.is_supervisor:
            raise Denied(403, "supervisors only")
        board = await self.db(live_board, self.store)
        return self.render("_board.html", board=board)

    async def calls_export(self, request: Request) -> Response:
        session = await self.page_session(request, supervisor=True)
        day = self._day(request)
        body = await self.db(calls_csv, self.store, day)
        await self.db(self.cases.record, session.agent.id, "export_calls", day)
        return PlainTextResponse(
            body,
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="calls-{day}.csv"'},
        )

    # --- the JSON API --------------------------------------------------------------------------
    async def api_cases(self, request: Request) -> Response:
        await self.api_agent(request)
        raw = request.query_params.get("status", "waiting")
        try:
            status = CaseStatus(raw)
        except ValueError as exc:
            raise Denied(400, f"expected status waiting, claimed or resolved, got {raw!r}") from exc
        out = await self.db(self._api_cases, status)
        return JSONResponse({"cases": out})

    def _api_cases(self, status: CaseStatus) -> list[dict[str, Any]]:
        summaries = self.cases.cases(status)
        transcripts = self.cases.transcripts([s.id for s in summaries])
        return [{**s.as_dict(), "transcript": transcripts.get(s.id, [])} for s in summaries]

    async def api_report(self, request: Request) -> Response:
        agent = await self.api_agent(request)
        if not agent.is_supervisor:
            raise Denied(403, "supervisors only")
        day = self._day(request)
        report = await self.db(day_report, self.store, day)
        return JSONResponse(report.as_dict())


def create_app(desk: Desk) -> ASGIApp:
    routes = [
        Route("/login", desk.login_page, methods=["GET"]),
        Route("/login", desk.login, methods=["POST"]),
        Route("/logout", desk.logout, methods=["POST"]),
        Route("/", desk.queue_page, methods=["GET"]),
        Route("/fragments/queue", desk.queue_fragment, methods=["GET"]),
        Route("/state", desk.set_state, methods=["POST"]),
        Route("/events", desk.events, methods=["GET"]),
        Route("/cases/{case_id:int}", desk.case_page, methods=["GET"]),
        Route("/fragments/cases/{case_id:int}", desk.case_status, methods=["GET"]),
        Route("/cases/{case_id:int}/claim", desk.claim, methods=["POST"]),
        Route("/cases/{case_id:int}/reveal", desk.reveal, methods=["POST"]),
        Route("/cases/{case_id:int}/notes", desk.note, methods=["POST"]),
        Route("/cases/{case_id:int}/resolve", desk.resolve, methods=["POST"]),
        Route("/cases/{case_id:int}/ticket", desk.ticket, methods=["POST"]),
        Route("/feedback/{feedback_id:int}/audio", desk.feedback_audio, methods=["GET"]),
        Route("/callbacks", desk.callbacks_page, methods=["GET"]),
        Route("/callbacks/{case_id:int}", desk.callback_done, methods=["POST"]),
        Route("/supervisor", desk.supervisor_page, methods=["GET"]),
        Route("/fragments/board", desk.board_fragment, methods=["GET"]),
        Route("/supervisor/calls.csv", desk.calls_export, methods=["GET"]),
        Route("/api/cases", desk.api_cases, methods=["GET"]),
        Route("/api/report", desk.api_report, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await desk.feed.close()

    app = Starlette(routes=routes, exception_handlers={Denied: desk.on_denied}, lifespan=lifespan)
    app.state.desk = desk
    return SecurityHeaders(app)
