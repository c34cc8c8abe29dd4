"""The `json-field` collector, in Python: fetch a JSON document over the
`http` strategy's transport and report one field of it.

Built with componentize-py against ../../wit (world `collector`).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, transport, types

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "JsonFieldConfig",
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "field"],
    "properties": {
        "url": {
            "type": "string",
            "x-templatable": True,
            "description": "Absolute URL, or a path relative to the strategy's baseUrl.",
        },
        "field": {
            "type": "string",
            "description": "Dotted path into the document, e.g. `checks.db.status` or `items.0.id`.",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "x-templatable": True,
        },
    },
}

RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer", "x-aggregate": "last", "x-chart": "bar"},
        "found": {"type": "boolean", "x-aggregate": "rate", "x-chart": "boolean"},
        "value": {},
        "valueType": {"type": "string"},
    },
}


def lookup(document, path):
    """Walks a dotted path; returns (found, value)."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def describe_error(err):
    kind = type(err).__name__.removeprefix("TransportError_")
    return f"{kind}: {err.value}"


class CollectorPlugin(exports.CollectorPlugin):
    def describe(self) -> types.CollectorInfo:
        return types.CollectorInfo(
            id="json-field",
            display_name="JSON field",
            description="Reads one field of a JSON document served over HTTP",
            strategies=["http"],
            allow_multiple=True,
            config_schema=json.dumps(CONFIG_SCHEMA),
            config_version=1,
            result_schema=json.dumps(RESULT_SCHEMA),
        )

    def migrate(self, from_version: int, config_json: str) -> str:
        return config_json

    def collect(self, config_json: str, ctx: types.RunContext) -> types.CollectorOutput:
        try:
            config = json.loads(config_json)
            url, field = config["url"], config["field"]
        except (ValueError, KeyError) as e:
            return types.CollectorOutput("{}", f"bad config: missing {e}")
        headers = list((config.get("headers") or {}).items())
        request = types.Request("GET", url, headers, b"", None)
        try:
            response = transport.exec(request)
        except Err as e:
            return types.CollectorOutput("{}", describe_error(e.value))
        result = {"statusCode": response.status, "found": False, "value": None, "valueType": "missing"}
        try:
            document = json.loads(bytes(response.body))
        except ValueError:
            log.log(types.LogLevel.WARN, f"{url} did not return JSON")
            return types.CollectorOutput(json.dumps(result), None)
        found, value = lookup(document, field)
        if found:
            result.update(found=True, value=value, valueType=type_name(value))
        log.log(types.LogLevel.DEBUG, f"check {ctx.check.id}: {field} found={found}")
        return types.CollectorOutput(json.dumps(result), None)
