"""The web UI through the app on a live loopback server: pages, fragments, filters,
pagination, escaping, CSRF, role checks and forms (the browser tests drive it end to end)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from prefect_lite import _time
from prefect_lite.api.blocks import create_block_document
from prefect_lite.api.deployments import create_deployment
from prefect_lite.api.flow_runs import create_flow_run, read_flow_run
from prefect_lite.api.logs import create_logs
from prefect_lite.api.variables import create_variable
from prefect_lite.api.work_pools import create_work_pool, read_work_pool
from prefect_lite.schemas import BlockDocument, FlowRun, Log, TaskRun
from prefect_lite.server import create_app
from prefect_lite.server.ui.pages_flow_run import AGGREGATE_ABOVE
from prefect_lite.settings import Settings
from prefect_lite.states import Completed, Failed, Pending, Running, Scheduled
from prefect_lite.storage import runs
from tests._live_server import serve

HOSTILE = "<script>alert(1)</script>"
HOSTILE_NAME = "<img src=x onerror=alert(1)>"  # names may not hold '/'
TEMPLATE = "{{7*7}}"
EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)
PAGES = ["/", "/runs", "/deployments", "/work-pools", "/variables", "/blocks", "/login"]


@pytest.fixture(scope="module")
def ui() -> Iterator[httpx.Client]:
    app = create_app(Settings(api_key=None))
    with serve(app) as base, httpx.Client(base_url=base) as client:
        yield client


def _run(flow: str = "etl", state: object = None, **fields: object) -> FlowRun:
    return create_flow_run(flow, state=state or Pending(), **fields)  # type: ignore[arg-type]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def _deployment(pool: str = "ui-pool", **fields: object) -> object:
    if pool:
        create_work_pool(pool)
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "title": "n"},
            "who": {"type": "string", "default": "world"},
            "mode": {"enum": ["fast", "slow"]},
            "flag": {"type": "boolean"},
            "items": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["n"],
    }
    return create_deployment(
        "ui-flow",
        "nightly",
        entrypoint="flows.py:ui_flow",
        work_pool_name=pool or None,
        parameter_openapi_schema=schema,
        schedules=[{"cron": "0 9 * * *", "timezone": "Europe/Berlin"}],  # type: ignore[list-item]
        **fields,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------- skeleton and pages


def test_every_page_renders_and_references_nothing_outside(ui: httpx.Client) -> None:
    dep = _deployment()
    run = _run(deployment_id=dep.id)  # type: ignore[attr-defined]
    extra = [
        f"/deployments/{dep.id}",  # type: ignore[attr-defined]
        f"/deployments/{dep.id}/run",  # type: ignore[attr-defined]
        "/work-pools/ui-pool",
        f"/flow-runs/{run.id}",
        f"/flow-runs/{run.id}/live",
        "/runs/table",
        "/api/docs",
    ]
    for path in PAGES + extra:
        answer = ui.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert not EXTERNAL.search(answer.text), (path, EXTERNAL.search(answer.text))
    docs = ui.get("/api/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs
    for asset in ("/static/htmx.min.js", "/static/style.css", "/static/swagger/swagger-ui.css"):
        assert ui.get(asset).status_code == 200, asset


def test_unknown_ids_are_html_404s_not_500s(ui: httpx.Client) -> None:
    for path in (
        f"/flow-runs/{uuid.uuid4()}",
        "/flow-runs/not-a-uuid",
        "/work-pools/nope",
        f"/deployments/{uuid.uuid4()}",
        "/deployments/xyz",
    ):
        answer = ui.get(path)
        assert answer.status_code == 404, path
        assert "Not found" in answer.text


# ---------------------------------------------------------------------- runs and filters


def _ids(page: str) -> list[str]:
    return re.findall(r'<a class="mono" href="/flow-runs/([0-9a-f-]{36})"', page)


def test_runs_are_paged_by_fifty_newest_first(ui: httpx.Client) -> None:
    start = _time.now() - timedelta(hours=5)
    made = [
        _run(expected_start_time=start + timedelta(minutes=i), name=f"run-{i:03d}").id
        for i in range(120)
    ]
    newest_first = [str(i) for i in reversed(made)]
    first, third = ui.get("/runs").text, ui.get("/runs?page=3").text
    assert _ids(first) == newest_first[:50]
    assert "Older" in first and "Newer" not in first
    assert _ids(third) == newest_first[100:]
    assert "Older" not in third
    table = ui.get("/runs/table?page=2").text
    assert _ids(table) == newest_first[50:100]
    assert 'hx-trigger="every 3s"' in table  # polls no faster than every 2 s
    assert ui.get("/runs?page=0").status_code == 422
    assert ui.get("/runs?page=abc").status_code == 422


def test_runs_filters_are_in_the_url(ui: httpx.Client) -> None:
    create_work_pool("p1")
    now = _time.now()
    done = _run("etl", Completed(), tags=["nightly"], expected_start_time=now)
    failed = _run("etl", Failed(), expected_start_time=now - timedelta(days=3))
    other = _run("report", Completed(), work_pool_name="p1", expected_start_time=now)
    assert set(_ids(ui.get("/runs?state=COMPLETED").text)) == {str(done.id), str(other.id)}
    assert _ids(ui.get("/runs?state=FAILED&state=COMPLETED&flow=etl").text) == [
        str(done.id),
        str(failed.id),
    ]
    assert _ids(ui.get("/runs?tag=nightly").text) == [str(done.id)]
    assert _ids(ui.get("/runs?pool=p1").text) == [str(other.id)]
    assert str(failed.id) not in _ids(ui.get("/runs?range=24h").text)
    assert ui.get("/runs?state=BOGUS").status_code == 422
    page = ui.get("/runs?state=FAILED&flow=etl").text
    assert 'value="FAILED" checked' in page and 'name="flow" value="etl"' in page


def test_hostile_names_are_escaped_everywhere(ui: httpx.Client) -> None:
    create_work_pool("ui-pool")
    dep = create_deployment(
        HOSTILE_NAME, TEMPLATE, description=HOSTILE, tags=[TEMPLATE], work_pool_name="ui-pool"
    )
    run = _run(
        HOSTILE_NAME,
        Failed(message=HOSTILE),
        name=TEMPLATE,
        tags=[HOSTILE_NAME],
        deployment_id=dep.id,
        parameters={"x": HOSTILE},
    )
    create_logs([Log(name="x", level=40, message=HOSTILE, flow_run_id=run.id)])
    create_variable("v", value=HOSTILE, tags=[TEMPLATE])
    for path in (
        "/",
        "/runs",
        f"/flow-runs/{run.id}",
        "/deployments",
        f"/deployments/{dep.id}",
        "/variables",
        f"/runs?tag={HOSTILE_NAME}",
    ):
        text = ui.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert TEMPLATE in text or "&lt;img" in text, path
    page = ui.get(f"/flow-runs/{run.id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the message and the parameter
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the flow name and the tag
    assert f"<h1>{TEMPLATE} " in page  # shown as typed, never evaluated


# ------------------------------------------------------------------------- the run page


def test_run_page_shows_history_logs_and_why_it_waits(ui: httpx.Client) -> None:
    create_work_pool("paused-pool", paused=True, concurrency_limit=0)
    run = _run("etl", Scheduled(scheduled_time=_time.now()), work_pool_name="paused-pool")
    create_logs(
        [
            Log(name="etl", level=lvl, message=f"line at {lvl}", flow_run_id=run.id)
            for lvl in (10, 20, 40)
        ]
    )
    page = ui.get(f"/flow-runs/{run.id}").text
    assert "Why is this run waiting?" in page
    assert "Work pool &#39;paused-pool&#39; is paused." in page
    assert "No worker is online on pool &#39;paused-pool&#39;." in page
    assert "concurrency limit of work pool &#39;paused-pool&#39; is full: 0 of 0" in page
    assert 'hx-trigger="every 2s"' in page
    errors_only = ui.get(f"/flow-runs/{run.id}?level=ERROR").text
    assert "line at 40" in errors_only and "line at 20" not in errors_only
    download = ui.get(f"/flow-runs/{run.id}/logs.txt")
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.text.count("\n") == 3 and "line at 10" in download.text
    runs.propose("flow", run.id, runs.Proposal(state=Completed(), force=True))
    final = ui.get(f"/flow-runs/{run.id}/live").text
    assert "hx-trigger" not in final  # a finished run stops polling
    assert "Why is this run waiting?" not in final


def test_many_task_runs_are_aggregated_per_task(ui: httpx.Client) -> None:
    run = _run("big", Running())
    batch = runs.RunBatch()
    for i in range(AGGREGATE_ABOVE + 100):
        key = f"flows.task_{i % 3}"
        task = TaskRun(
            name=f"task_{i % 3}-{i}", flow_run_id=run.id, task_key=key, dynamic_key=str(i)
        )
        batch.create("task", task, Completed() if i % 2 else Failed())
    batch.execute()
    page = ui.get(f"/flow-runs/{run.id}").text
    assert f"Task runs ({AGGREGATE_ABOVE + 100})" in page and "grouped by task" in page
    assert page.count('class="g-row"') == 3
    small = _run("small", Running())
    for i in range(4):
        runs.create_run(
            "task",
            TaskRun(name=f"t-{i}", flow_run_id=small.id, task_key="k", dynamic_key=str(i)),
            Completed(),
        )
    assert ui.get(f"/flow-runs/{small.id}").text.count('class="g-row"') == 4


# ------------------------------------------------------------------------ CSRF and forms


def test_actions_need_the_pages_csrf_token(ui: httpx.Client) -> None:
    run = _run("etl", Pending())
    url = f"/flow-runs/{run.id}/cancel"
    assert ui.post(url, data={}).status_code == 400
    assert ui.post(url, data={"csrf_token": "0" * 64}).status_code == 400
    other_session = {"Cookie": "prefect_lite_key=other"}
    stolen = _csrf(ui.get(f"/flow-runs/{run.id}", headers=other_session).text)
    assert ui.post(url, data={"csrf_token": stolen}).status_code == 400
    assert read_flow_run(run.id).state_type == "PENDING"
    token = _csrf(ui.get(f"/flow-runs/{run.id}").text)
    answer = ui.post(url, data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == f"/flow-runs/{run.id}"
    assert read_flow_run(run.id).state_type == "CANCELLED"


def test_deployment_run_form_validates_like_the_api(ui: httpx.Client) -> None:
    dep = _deployment(pool="")
    url = f"/deployments/{dep.id}/run"  # type: ignore[attr-defined]
    form = ui.get(url).text
    assert 'name="p.n"' in form and 'name="p.mode"' in form and 'value="world"' in form
    token = _csrf(form)
    missing = ui.post(url, data={"csrf_token": token, "p.who": "x"})
    assert missing.status_code == 422 and "n is required" in missing.text
    typed = ui.post(url, data={"csrf_token": token, "p.n": "abc"})
    assert typed.status_code == 422 and "must be a whole number" in typed.text
    wrong = ui.post(url, data={"csrf_token": token, "p.n": "1", "p.items": '["a"]'})
    assert wrong.status_code == 422
    assert "parameter &#39;items&#39; of flow &#39;ui-flow&#39; must be an array" in wrong.text
    ok = ui.post(
        url,
        data={
            "csrf_token": token,
            "p.n": "7",
            "p.mode": '"slow"',
            "p.flag": "true",
            "p.items": "[1, 2]",
        },
    )
    assert ok.status_code == 303
    run_id = ok.headers["location"].rsplit("/", 1)[1]
    made = read_flow_run(uuid.UUID(run_id))
    assert made.parameters == {"n": 7, "mode": "slow", "flag": True, "items": [1, 2]}
    assert made.deployment_id == dep.id  # type: ignore[attr-defined]


def test_deployment_page_previews_schedules_in_words(ui: httpx.Client) -> None:
    dep = _deployment()
    page = ui.get(f"/deployments/{dep.id}").text  # type: ignore[attr-defined]
    assert "Every day at 09:00 (Europe/Berlin)" in page
    assert page.count("CET") + page.count("CEST") == 10
    token = _csrf(page)
    ui.post(f"/deployments/{dep.id}/pause", data={"csrf_token": token, "paused": "true"})  # type: ignore[attr-defined]
    assert "Resume schedules" in ui.get(f"/deployments/{dep.id}").text  # type: ignore[attr-defined]


def test_pool_page_pauses_and_sets_limits(ui: httpx.Client) -> None:
    create_work_pool("ops")
    late = _run("etl", Scheduled(scheduled_time=_time.now() - timedelta(minutes=5)),
                work_pool_name="ops", name="overdue-run")  # fmt: skip
    _run("etl", Scheduled(scheduled_time=_time.now() + timedelta(hours=1)), work_pool_name="ops",
         name="future-run")  # fmt: skip
    page = ui.get("/work-pools/ops").text
    late_section = page.split("<h2>Late runs</h2>")[1].split("<h2>")[0]
    assert f"/flow-runs/{late.id}" in late_section and "future-run" not in late_section
    token = _csrf(page)
    assert (
        ui.post("/work-pools/ops", data={"csrf_token": token, "action": "pause"}).status_code == 303
    )
    assert read_work_pool("ops").paused
    ui.post(
        "/work-pools/ops", data={"csrf_token": token, "action": "limits", "concurrency_limit": "3"}
    )
    assert read_work_pool("ops").concurrency_limit == 3
    bad = ui.post(
        "/work-pools/ops", data={"csrf_token": token, "action": "limits", "concurrency_limit": "-1"}
    )
    assert bad.status_code == 422
    assert "Resume pool" in ui.get("/work-pools/ops").text


def test_block_secrets_never_reach_the_page(ui: httpx.Client) -> None:
    create_block_document(
        BlockDocument(
            name="db",
            block_type_slug="creds",
            data={"user": "app", "password": "hunter2-s3cret"},
            block_schema={"secret_fields": ["password"]},
        )
    )
    page = ui.get("/blocks").text
    assert "creds/db" in page and "app" in page
    assert "hunter2-s3cret" not in page


def test_login_sets_a_strict_httponly_cookie_and_only_local_redirects(ui: httpx.Client) -> None:
    token = _csrf(ui.get("/login").text)
    answer = ui.post("/login", data={"csrf_token": token, "key": "k1", "next": "/runs"})
    assert answer.status_code == 303 and answer.headers["location"] == "/runs"
    cookie = answer.headers["set-cookie"].lower()
    assert "prefect_lite_key=k1" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    for target in ("//evil.example", "https://evil.example", "/\\evil"):
        ui.cookies.clear()
        token = _csrf(ui.get("/login").text)
        away = ui.post("/login", data={"csrf_token": token, "key": "k", "next": target})
        assert away.headers["location"] == "/"
    ui.cookies.clear()


# ------------------------------------------------------------------------------- roles

KEYS = {"read": "read-k3y", "run": "run-k3y", "admin": "admin-k3y"}


@pytest.fixture(scope="module")
def secured() -> Iterator[httpx.Client]:
    spec = ",".join(f"{role}:{key}" for role, key in KEYS.items())
    app = create_app(Settings(api_key=None, api_keys=spec))  # type: ignore[arg-type]
    with serve(app) as base, httpx.Client(base_url=base) as client:
        yield client


def _as(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def test_pages_need_a_key_and_send_browsers_to_login(secured: httpx.Client) -> None:
    answer = secured.get("/runs?state=FAILED")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=/runs")
    assert secured.get("/login").status_code == 200
    assert secured.get("/static/style.css").status_code == 200
    assert secured.get("/runs", headers=_as("read")).status_code == 200


def test_buttons_follow_the_role_and_the_server_checks_it_again(secured: httpx.Client) -> None:
    run = _run("etl", Pending())
    page = {role: secured.get(f"/flow-runs/{run.id}", headers=_as(role)).text for role in KEYS}
    assert "Cancel run" not in page["read"] and "Set state" not in page["read"]
    assert "Cancel run" in page["run"] and "Set state" not in page["run"]
    assert "Cancel run" in page["admin"] and "Set state" in page["admin"]
    token = _csrf(page["read"])
    refused = secured.post(
        f"/flow-runs/{run.id}/cancel", data={"csrf_token": token}, headers=_as("read")
    )
    assert refused.status_code == 403 and "needs the &#39;run&#39; role" in refused.text
    token = _csrf(page["run"])
    forced = secured.post(
        f"/flow-runs/{run.id}/set-state",
        data={"csrf_token": token, "state": "COMPLETED"},
        headers=_as("run"),
    )
    assert forced.status_code == 403
    assert read_flow_run(run.id).state_type == "PENDING"
    done = secured.post(
        f"/flow-runs/{run.id}/cancel", data={"csrf_token": token}, headers=_as("run")
    )
    assert done.status_code == 303
    assert read_flow_run(run.id).state_type == "CANCELLED"


def test_login_cookie_signs_in_and_a_wrong_key_is_said_so(secured: httpx.Client) -> None:
    secured.cookies.clear()
    token = _csrf(secured.get("/login").text)
    signed = secured.post("/login", data={"csrf_token": token, "key": KEYS["run"], "next": "/"})
    assert signed.status_code == 303
    home = secured.get("/")
    assert home.status_code == 200 and "role: run" in home.text
    secured.cookies.clear()
    secured.cookies.set("prefect_lite_key", "wrong")
    assert secured.get("/").headers["location"] == "/login?next=/"
    assert "That key was not accepted" in secured.get("/login?next=/").text
    secured.cookies.clear()


def test_schedule_preview_marks_the_dst_shift() -> None:
    from prefect_lite.schemas import Schedule
    from prefect_lite.server.ui.pages_deployments import in_words, preview

    daily = Schedule(cron="0 9 * * *", timezone="Europe/Berlin")
    with _time.frozen_time(_time.ensure_utc(datetime(2027, 3, 21, 12))):
        shown = preview(daily)
    assert in_words(daily) == "Every day at 09:00 (Europe/Berlin)"
    assert [row["shift"] for row in shown] == [False] * 6 + [True] + [False] * 3
    assert shown[5]["utc"] == "2027-03-27 08:00:00Z" and shown[6]["utc"] == "2027-03-28 07:00:00Z"
    assert shown[6]["local"] == "Sun 2027-03-28 09:00:00 CEST"


def test_task_names_are_read_exactly_and_a_finished_timeline_follows_new_tasks(
    ui: httpx.Client,
) -> None:
    run = _run("quoted", Running())
    odd = 'say "hi" \\ <b>there</b>'
    runs.create_run("task", TaskRun(name=odd, flow_run_id=run.id, task_key="k"), Completed())
    runs.propose("flow", run.id, runs.Proposal(state=Completed(), force=True))
    page = ui.get(f"/flow-runs/{run.id}").text
    assert "say &#34;hi&#34; \\ &lt;b&gt;there&lt;/b&gt;" in page
    assert page.count('class="g-row"') == 1
    runs.create_run("task", TaskRun(name="late", flow_run_id=run.id, task_key="k2"), Completed())
    assert ui.get(f"/flow-runs/{run.id}").text.count('class="g-row"') == 2


def test_dashboard_counts_runs_by_state_hour_by_hour(ui: httpx.Client) -> None:
    now = _time.now()
    _run("etl", Failed(), expected_start_time=now)
    _run("etl", Completed(), expected_start_time=now - timedelta(hours=3))
    _run("etl", Completed(), expected_start_time=now - timedelta(hours=30))  # too old
    page = ui.get("/").text
    assert page.count('class="hour"') == 24
    tiles = re.findall(r'<span class="n">(\d+)</span><span class="l">(\w+)</span>', page)
    assert {label: int(n) for n, label in tiles}["Completed"] == 1
    hours = re.findall(r'title="(\d\d:00) UTC: (\d+) runs?"', page)
    assert [n for _, n in hours].count("1") == 2 and hours[-1][1] == "1"
