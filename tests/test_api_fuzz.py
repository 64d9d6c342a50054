"""Fuzz the API from its own OpenAPI document (schemathesis, bounded examples).

Every operation gets generated requests, valid and invalid (``mode: all``), sent to the
app in-process over ASGI with a real Redis behind it, with authentication on (every
request carries an admin key; the ASGI client's Host, ``testserver``, is configured as
trusted). The properties: no request ever
gets a 5xx; every error answer is ``{"detail": "<message>"}``; a request whose body was
made invalid on purpose is refused with a 4xx; a 2xx answer matches its response schema.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import negated_parameters
from schemathesis.specs.openapi.checks import response_schema_conformance

from prefect_lite.server import create_app
from prefect_lite.settings import Settings

EXAMPLES_PER_OPERATION = 15
ADMIN_KEY = "fuzz-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

APP = create_app(
    Settings(
        api_key=None, api_keys=SecretStr(f"admin:{ADMIN_KEY}"), server_trusted_hosts="testserver"
    )
)
CONFIG = schemathesis.Config.from_dict(
    {
        "headers": AUTH,
        "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "database": "none"},
    }
)
SCHEMA = schemathesis.openapi.from_asgi("/api/openapi.json", APP, config=CONFIG, headers=AUTH)


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_fails_on_generated_requests(case: schemathesis.Case) -> None:
    response = case.call(headers=AUTH)
    assert response.status_code not in (401, 403), f"the admin key was refused: {response.text}"
    where = f"{case.method} {case.formatted_path}: {case.as_curl_command()}"
    assert response.status_code < 500, f"{response.status_code} for {where}\n{response.text}"
    if response.status_code >= 400:
        detail = response.json().get("detail")
        assert isinstance(detail, str) and detail, f"no detail for {where}: {response.text}"
    mutated = {location for _name, location in negated_parameters(case.meta)}
    if ParameterLocation.BODY in mutated:
        assert 400 <= response.status_code < 500, f"invalid body accepted: {where}"
    if response.status_code < 300:
        case.validate_response(response, checks=[response_schema_conformance])
