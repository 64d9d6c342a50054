"""Login and logout: the key goes into an HttpOnly, SameSite=Strict cookie.

The auth middleware reads that cookie on every later request (and sends a page request
without valid credentials to ``/login?next=<path>``). On this open page it gives the role
``""`` to a caller without a valid key, so a cookie that is set but earns no role holds a
key that was refused, and the page says so.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prefect_lite.server.ui.render import Renderer, guarded
from prefect_lite.server.ui.security import COOKIE, FormDep, role_of

MAX_KEY = 4096
COOKIE_DAYS = 30


def safe_next(value: str) -> str:
    """A local path to go back to; anything else (another site, a scheme) is ``/``."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    return value


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/login", response_class=HTMLResponse)
    @guarded(ui)
    def login(request: Request) -> HTMLResponse:
        target = safe_next(request.query_params.get("next", "/"))
        refused = COOKIE in request.cookies and role_of(request) == ""
        error = (
            "That key was not accepted (or it was revoked). Enter a valid key." if refused else ""
        )
        return ui.html(request, "login.html", next=target, error=error)

    @r.post("/login")
    @guarded(ui)
    def login_post(request: Request, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        key = form.get("key").strip()
        target = safe_next(form.get("next", "/"))
        if not key or len(key) > MAX_KEY:
            return ui.html(
                request, "login.html", status=422, next=target, error="Enter your API key."
            )
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            COOKIE,
            key,
            max_age=COOKIE_DAYS * 86_400,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return answer

    @r.post("/logout")
    @guarded(ui)
    def logout(request: Request, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        answer = RedirectResponse("/login" if ui.auth_on else "/", status_code=303)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    return r
