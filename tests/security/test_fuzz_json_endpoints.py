"""Schema-driven fuzzing (schemathesis) of every JSON endpoint against a live server.

Bounded so CI stays fast: FUZZ_EXAMPLES examples per operation (raise it locally for a deeper
search). Positive and negative cases alike: never a 5xx, and every answer is one the
description allows (status code, content type, body schema).
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp.blueprints.openapi import DESCRIPTION
from tests.security.conftest import LiveServer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
schema = schemathesis.openapi.from_path(str(DESCRIPTION))


def not_a_server_error(ctx: object, response: object, case: object) -> None:
    """A 503 is a server error too: the database is up here, so none is allowed."""
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, f"{case} answered {status}"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_json_endpoints_never_fail_and_answer_as_described(case: schemathesis.Case, live_server: LiveServer) -> None:
    case.call_and_validate(base_url=live_server.url, timeout=10, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])
