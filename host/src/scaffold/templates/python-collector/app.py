"""The `{{name}}` collector: fetches a URL over the `http` strategy and
reports its status and whether it is the one expected.

Build it with `checkhost plugin build`; the logic it tests lives in check.py.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import transport, types

import check


class CollectorPlugin(exports.CollectorPlugin):
    def describe(self) -> types.CollectorInfo:
        return types.CollectorInfo(
            id="{{name}}",
            display_name="{{name}}",
            description="Whether a URL answers with the expected status",
            strategies=["http"],
            allow_multiple=False,
            config_schema=json.dumps(check.CONFIG_SCHEMA),
            config_version=1,
            result_schema=json.dumps(check.RESULT_SCHEMA),
        )

    def migrate(self, from_version: int, config_json: str) -> str:
        return config_json

    def collect(self, config_json: str, ctx: types.RunContext) -> types.CollectorOutput:
        try:
            config = check.parse_config(config_json)
        except ValueError as e:
            return types.CollectorOutput("{}", f"bad config: {e}")
        request = types.Request("GET", config["url"], [], b"", None)
        try:
            response = transport.exec(request)
        except Err as e:
            return types.CollectorOutput("{}", f"transport failed: {e.value}")
        result = check.summarize(response.status, config["expectStatus"])
        return types.CollectorOutput(json.dumps(result), None)
