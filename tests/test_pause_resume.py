"""pause_flow_run / resume_flow_run: blocking pause, typed input, timeouts, the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from prefect_lite import _time, flow, pause_flow_run, resume_flow_run
from prefect_lite.client import get_client
from prefect_lite.context import FlowRunContext
from prefect_lite.engine.flow_engine import run_flow
from prefect_lite.exceptions import (
    FlowPauseTimeout,
    NotPausedError,
    PayloadTooLarge,
    ValidationError,
)
from prefect_lite.input import RunInput, read_flow_run_input
from prefect_lite.schemas import FlowRun
from prefect_lite.server import create_app
from prefect_lite.settings import get_settings, temporary_settings
from prefect_lite.states import Cancelling, Paused, Running, State, StateType
from tests._live_server import serve
from tests.helpers import python_env, spawn_python, wait_for


class Approval(RunInput):
    approved: bool
    comments: str = ""


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _paused_run(flow_name: str) -> FlowRun:
    """The flow's run, once it is paused (waits for it)."""

    def paused() -> FlowRun | None:
        with get_client(sync_client=True) as client:
            found = client.read_flow_runs(flow_name=flow_name, states=[StateType.PAUSED])
        return found[0] if found else None

    run = wait_for(paused, timeout=30, message=f"{flow_name} did not pause")
    assert run is not None
    return run


def _read(run_id: uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _in_thread(pool: ThreadPoolExecutor, fn: Callable[[], Any]) -> Future[Any]:
    return pool.submit(fn)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect_lite", *args],
        env=python_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


APPROVAL_FLOW = """
from prefect_lite import flow, task, pause_flow_run
from prefect_lite.input import RunInput

class Approval(RunInput):
    approved: bool
    comments: str = ""

@task
def prepare(doc):
    return {"doc": doc, "status": "prepared"}

@flow(name="needs-approval")
def needs_approval(doc: str):
    prepared = prepare(doc)
    answer = pause_flow_run(wait_for_input=Approval.with_initial_data(
        description="Publish it?", approved=False), timeout=60)
    return {**prepared, "approved": answer.approved, "comments": answer.comments}

print("RESULT", needs_approval("report"))
"""


def test_a_local_run_paused_for_input_is_resumed_from_another_process_by_the_cli() -> None:
    proc = spawn_python(APPROVAL_FLOW)
    try:
        run = _paused_run("needs-approval")
        assert run.state is not None and run.state.name == "Paused"
        details = run.state.state_details
        assert details.pause_key == "1" and details.pause_timeout is not None
        assert details.run_input_keyset == {
            "description": "paused-1-description",
            "response": "paused-1-response",
            "schema": "paused-1-schema",
        }
        schema = read_flow_run_input("paused-1-schema", flow_run_id=run.id)
        assert schema["properties"]["approved"]["type"] == "boolean"
        assert read_flow_run_input("paused-1-description", flow_run_id=run.id) == "Publish it?"

        bad = _cli("flow-run", "resume", str(run.id), "--input", '{"approved": "maybe"}')
        assert bad.returncode == 1
        assert "Error: invalid run input" in bad.stderr and "'approved'" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
        assert _read(run.id).state_type is StateType.PAUSED  # still waiting

        good = _cli(
            "flow-run", "resume", str(run.id), "--input", '{"approved": true, "comments": "ok"}'
        )
        assert good.returncode == 0, good.stderr
        assert f"Resumed flow run {run.id}" in good.stdout
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "'approved': True, 'comments': 'ok'" in out
    final = _read(run.id)
    assert final.state_type is StateType.COMPLETED
    names = [s.name for s in get_client(sync_client=True).read_flow_run_states(run.id)]
    assert names[-4:] == ["Running", "Paused", "Running", "Completed"]


def test_cli_resume_errors_are_one_line() -> None:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run("idle")
    for args, expected in (
        (("flow-run", "resume", str(run.id)), "isn't paused (it is Pending)"),
        (("flow-run", "resume", "nope"), "is not a flow run id"),
        (("flow-run", "resume", str(run.id), "--input", "{bad"), "--input is not valid JSON"),
        (("flow-run", "resume", str(uuid.uuid4())), "no flow run with id"),
    ):
        result = _cli(*args)
        assert result.returncode == 1
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_pause_without_input_blocks_until_resumed(pool: ThreadPoolExecutor) -> None:
    @flow(name="plain-pause")
    def plain_pause() -> str:
        assert pause_flow_run(timeout=30) is None
        return "done"

    future = _in_thread(pool, plain_pause)
    run = _paused_run("plain-pause")
    assert not future.done()
    resume_flow_run(run.id)
    assert future.result(timeout=30) == "done"
    with pytest.raises(NotPausedError, match="isn't paused"):
        resume_flow_run(run.id)


def test_a_plain_type_input_can_be_given_bare_or_wrapped(pool: ThreadPoolExecutor) -> None:
    @flow(name="ask-twice")
    def ask_twice() -> tuple[str, int]:
        word = pause_flow_run(wait_for_input=str, timeout=30)
        number = pause_flow_run(wait_for_input=int, timeout=30)
        return word, number

    future = _in_thread(pool, ask_twice)
    run = _paused_run("ask-twice")
    with pytest.raises(ValidationError, match=r"is not of type .string."):
        resume_flow_run(run.id, 5)
    resume_flow_run(run.id, "yes")
    wait_for(lambda: _read(run.id).state.state_details.pause_key == "2", timeout=30)  # type: ignore[union-attr]
    resume_flow_run(run.id, {"value": 42})
    assert future.result(timeout=30) == ("yes", 42)


def test_invalid_input_leaves_the_run_paused(pool: ThreadPoolExecutor) -> None:
    @flow(name="strict")
    def strict() -> bool:
        return pause_flow_run(wait_for_input=Approval, timeout=30).approved

    future = _in_thread(pool, strict)
    run = _paused_run("strict")
    for bad, message in (
        (None, r".approved. is a required property"),
        ({"approved": True, "extra": 1}, "Additional properties are not allowed"),
        ("text", "must be a JSON object"),
    ):
        with pytest.raises(ValidationError, match=message):
            resume_flow_run(run.id, bad)
        assert _read(run.id).state_type is StateType.PAUSED
    with temporary_settings(max_payload_bytes=200), pytest.raises(PayloadTooLarge):
        resume_flow_run(run.id, {"approved": True, "comments": "x" * 500})
    assert _read(run.id).state_type is StateType.PAUSED
    resume_flow_run(run.id, Approval(approved=True))
    assert future.result(timeout=30) is True


def test_a_pause_that_times_out_fails_the_run() -> None:
    @flow(name="forgotten")
    def forgotten() -> None:
        pause_flow_run(timeout=0.3)

    state = run_flow(forgotten, return_type="state")
    assert state.type is StateType.FAILED
    assert "Flow run was paused and never resumed" in (state.message or "")
    with pytest.raises(FlowPauseTimeout):
        state.result()


def test_resuming_after_the_pause_expired_fails_the_run() -> None:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run("late-resume", state=Running())
        expired = Paused(pause_expiration_time=_time.now() - timedelta(seconds=1), pause_key="1")
        assert client.pause_flow_run(run.id, expired).status == "ACCEPT"
        with pytest.raises(FlowPauseTimeout, match="can no longer resume"):
            resume_flow_run(run.id)
        final = client.read_flow_run(run.id).state
    assert final is not None and final.type is StateType.FAILED
    assert final.message == "The flow was paused and never resumed."


def test_a_pause_key_fires_once_per_run() -> None:
    @flow(name="twice")
    def twice() -> None:
        run_id = FlowRunContext.get().flow_run.id  # type: ignore[union-attr]
        with ThreadPoolExecutor(1) as resumer:
            resumer.submit(_resume_when_paused, run_id)
            pause_flow_run(timeout=30, key="approval")
        pause_flow_run(timeout=30, key="approval")  # fired already: returns at once

    state = run_flow(twice, return_type="state")
    assert state.type is StateType.COMPLETED
    run_id = get_client(sync_client=True).read_flow_runs(flow_name="twice")[0].id
    history = get_client(sync_client=True).read_flow_run_states(run_id)
    assert [s.name for s in history].count("Paused") == 1


def _resume_when_paused(run_id: uuid.UUID) -> None:
    wait_for(lambda: _read(run_id).state_type is StateType.PAUSED, timeout=30)
    resume_flow_run(run_id)


def test_pausing_is_refused_outside_a_running_flow_run() -> None:
    with pytest.raises(RuntimeError, match="only be paused from within a flow run"):
        pause_flow_run()
    with get_client(sync_client=True) as client:
        run = client.create_flow_run("not-running")
        answer = client.pause_flow_run(run.id, Paused(pause_key="x"))
    assert answer.status == "REJECT"
    assert answer.details == "Cannot pause flows that are not currently running."
    with pytest.raises(ValidationError, match="Paused or Suspended"):
        get_client(sync_client=True).pause_flow_run(run.id, Running())


def test_cancelling_a_paused_run_cancels_it(pool: ThreadPoolExecutor) -> None:
    @flow(name="cancel-me")
    def cancel_me() -> None:
        pause_flow_run(timeout=60)

    future: Future[State] = _in_thread(pool, lambda: run_flow(cancel_me, return_type="state"))
    run = _paused_run("cancel-me")
    with get_client(sync_client=True) as client:
        answer = client.set_flow_run_state(run.id, Cancelling(message="no longer needed"))
    assert answer.state is not None and answer.state.type is StateType.CANCELLED
    state = future.result(timeout=30)
    assert state.type is StateType.CANCELLED


def test_async_flows_await_the_pause(pool: ThreadPoolExecutor) -> None:
    @flow(name="async-pause")
    async def async_pause() -> bool:
        answer = await pause_flow_run(wait_for_input=Approval, timeout=30)
        return bool(answer.approved)

    future = _in_thread(pool, lambda: asyncio.run(async_pause()))
    run = _paused_run("async-pause")
    asyncio.run(_resume_async(run.id))
    assert future.result(timeout=30) is True


async def _resume_async(run_id: uuid.UUID) -> None:
    await resume_flow_run(run_id, {"approved": True})


def test_pause_and_resume_through_the_http_api(pool: ThreadPoolExecutor) -> None:
    @flow(name="remote-pause")
    def remote_pause() -> str:
        answer: str = pause_flow_run(wait_for_input=str, timeout=30)
        return answer

    with serve(create_app(get_settings())) as base, temporary_settings(api_url=f"{base}/api"):
        future = _in_thread(pool, remote_pause)
        run = _paused_run("remote-pause")
        env = {"PREFECT_LITE_API_URL": f"{base}/api", "PREFECT_LITE_REDIS_URL": None}
        bad = _cli("flow-run", "resume", str(run.id), "--input", "3", env=env)
        assert bad.returncode == 1 and 'is not of type "string"' in bad.stderr
        good = _cli("flow-run", "resume", str(run.id), "--input", '"over http"', env=env)
        assert good.returncode == 0, good.stderr
        assert future.result(timeout=30) == "over http"
