"""Work pools: the list, and a pool's page with its queues (priority, depth, slots), its
workers and their heartbeats, runs held back by limits, and the admin's controls (pause,
resume, concurrency limits, queue priority)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prefect_lite import _time
from prefect_lite.api.work_pools import (
    read_work_pool_status,
    read_work_pools,
    update_work_pool,
    update_work_queue,
)
from prefect_lite.exceptions import ValidationError
from prefect_lite.server.ui.render import Renderer, guarded, when
from prefect_lite.server.ui.security import Form, FormDep, require
from prefect_lite.server.ui.waiting import HEARTBEAT_STALE
from prefect_lite.storage import pools, run_views

MAX_POOLS = 500
LATE_AFTER = 60  # seconds past its start time before a scheduled run counts as late
LATE_SHOWN = 10


def _limit(text: str) -> tuple[int | None, bool]:
    """``(limit, clear)`` from a form field: empty clears the limit."""
    text = text.strip()
    if not text:
        return None, True
    if not text.isdigit():
        raise ValidationError(f"a concurrency limit must be a whole number ≥ 0, not {text!r}")
    return int(text), False


def _update(name: str, form: Form) -> None:
    action = form.get("action")
    queue = form.get("queue")
    if action in ("pause", "resume"):
        paused = action == "pause"
        if queue:
            update_work_queue(name, queue, paused=paused)
        else:
            update_work_pool(name, paused=paused)
    elif action == "limits":
        limit, clear = _limit(form.get("concurrency_limit"))
        if queue:
            priority = form.get("priority").strip()
            if priority and not priority.lstrip("-").isdigit():
                raise ValidationError(f"priority must be a whole number, not {priority!r}")
            update_work_queue(
                name,
                queue,
                concurrency_limit=limit,
                clear_concurrency_limit=clear,
                priority=int(priority) if priority else None,
            )
        else:
            update_work_pool(name, concurrency_limit=limit, clear_concurrency_limit=clear)
    else:
        raise ValidationError(f"unknown action {action!r}")


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/work-pools", response_class=HTMLResponse)
    @guarded(ui)
    def work_pools(request: Request) -> HTMLResponse:
        found = read_work_pools(limit=MAX_POOLS)
        workers = pools.list_workers(None)
        fresh = _time.now() - HEARTBEAT_STALE
        online = {
            p.name: sum(
                1
                for w in workers
                if w.work_pool_name == p.name
                and w.status == "ONLINE"
                and w.last_heartbeat_time >= fresh
            )
            for p in found
        }
        return ui.html(request, "work_pools.html", pools=found, online=online)

    @r.get("/work-pools/{name}", response_class=HTMLResponse)
    @guarded(ui)
    def work_pool(request: Request, name: str) -> HTMLResponse:
        status = read_work_pool_status(name)
        fresh = _time.now() - HEARTBEAT_STALE
        late_before = _time.timestamp() - LATE_AFTER
        late = run_views.page_flow_runs(
            run_views.RunFilter(states=["SCHEDULED"], pool=status.pool.name, before=late_before),
            0,
            LATE_SHOWN,
        )
        return ui.html(
            request,
            "work_pool.html",
            s=status,
            fresh=fresh,
            late=late,
            late_before=when(late_before).replace(" ", "T").rstrip("Z"),
        )

    @r.post("/work-pools/{name}")
    @guarded(ui)
    def work_pool_update(request: Request, name: str, form: FormDep) -> Response:
        form.check(request, ui.csrf)
        require(request, "admin")
        status = read_work_pool_status(name)
        _update(status.pool.name, form)
        return RedirectResponse(f"/work-pools/{request.path_params['name']}", status_code=303)

    return r
