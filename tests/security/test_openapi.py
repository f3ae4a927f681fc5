"""The OpenAPI description (idp/openapi.json) is served and agrees with the routes the app has."""

from __future__ import annotations

import json
import re

from flask import Flask
from flask.testing import FlaskClient

from idp.blueprints.openapi import DESCRIPTION

# The blueprints whose every route answers JSON (health's /metrics answers Prometheus text).
JSON_BLUEPRINTS = {"protocol", "registration", "ledger", "health", "discovery", "openapi"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def described() -> dict[str, set[str]]:
    paths = json.loads(DESCRIPTION.read_text())["paths"]
    return {path: {method.upper() for method in item if method != "parameters"} for path, item in paths.items()}


def routed(app: Flask) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] in JSON_BLUEPRINTS:
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # Werkzeug <int:x> → OpenAPI {x}
            routes.setdefault(path, set()).update(set(rule.methods or ()) - IGNORED_METHODS)
    return routes


def test_the_description_names_every_json_route_and_method_and_nothing_else(app: Flask) -> None:
    assert described() == routed(app)


def test_the_description_is_served_as_kept_in_the_repository(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    assert response.get_json() == json.loads(DESCRIPTION.read_text())
    assert response.get_json()["openapi"].startswith("3.1")


def test_the_description_is_a_valid_openapi_3_1_document() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_path(str(DESCRIPTION))
    schema.validate()
    assert len(list(schema.get_all_operations())) == sum(len(methods) for methods in described().values())
