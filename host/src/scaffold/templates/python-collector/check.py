"""What the `{{name}}` collector measures, free of the component bindings so
that `python3 -m unittest` can test it."""

import json

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {
            "type": "string",
            "x-templatable": True,
            "description": "Absolute URL, or a path relative to the strategy's baseUrl.",
        },
        "expectStatus": {"type": "integer", "default": 200},
    },
}

RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer"},
        "up": {"type": "boolean"},
    },
}


def parse_config(config_json):
    """The config with defaults filled in; ValueError names what is wrong."""
    config = json.loads(config_json)
    if not isinstance(config.get("url"), str):
        raise ValueError("`url` is required")
    config.setdefault("expectStatus", 200)
    return config


def summarize(status, expect_status):
    """Everything the target answered is a metric; assertions judge it."""
    return {"statusCode": status, "up": status == expect_status}
