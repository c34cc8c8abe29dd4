"""What the `{{name}}` strategy decides, free of the component bindings so
that `python3 -m unittest` can test it."""

import json

DEFAULT_TIMEOUT_MS = 5000

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["host", "port"],
    "properties": {
        "host": {
            "type": "string",
            "x-templatable": True,
            "description": "Name or IP address of the target.",
        },
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "timeoutMs": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_TIMEOUT_MS,
            "description": "Name lookup and connect timeout.",
        },
    },
}

RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "description": "0: connected"},
        "statusText": {"type": "string"},
        "timings": {
            "type": "object",
            "properties": {"dnsMs": {"type": "number"}, "connectMs": {"type": "number"}},
        },
    },
}

# Requests `exec` answers; anything else is a protocol error.
METHODS = ("CONNECT", "PING")

# wasi:sockets error codes (by name) that are not `other`.
FAILURE_KINDS = {
    "CONNECTION_REFUSED": "refused",
    "CONNECTION_RESET": "refused",
    "TIMEOUT": "timeout",
    "ACCESS_DENIED": "denied",
    "NAME_UNRESOLVABLE": "dns",
    "TEMPORARY_RESOLVER_FAILURE": "dns",
    "PERMANENT_RESOLVER_FAILURE": "dns",
}


def parse_config(config_json):
    """(host, port, timeout_ms); ValueError names the field that is wrong."""
    try:
        config = json.loads(config_json)
    except ValueError as e:
        raise ValueError(f"config is not JSON: {e}") from e
    if not isinstance(config, dict):
        raise ValueError("config must be an object")
    host, port = config.get("host"), config.get("port")
    timeout_ms = config.get("timeoutMs", DEFAULT_TIMEOUT_MS)
    if not isinstance(host, str) or not host:
        raise ValueError("`host` must be a non-empty string")
    if not _is_int(port) or not 1 <= port <= 65535:
        raise ValueError("`port` must be an integer from 1 to 65535")
    if not _is_int(timeout_ms) or timeout_ms < 1:
        raise ValueError("`timeoutMs` must be a positive integer")
    return host, port, timeout_ms


def _is_int(value):
    # JSON true/false arrive as bool, which Python counts as int.
    return isinstance(value, int) and not isinstance(value, bool)


def failure(code_name, what):
    """(transport-error kind, message) for a wasi:sockets error code name,
    e.g. ("refused", "connect to db:5432: connection refused")."""
    kind = FAILURE_KINDS.get(code_name, "other")
    return kind, f"{what}: {code_name.lower().replace('_', ' ')}"


def answer(method):
    """(status, status text) for a request; ValueError for a method this
    strategy does not speak."""
    if method.upper() not in METHODS:
        raise ValueError(f"method `{method}` is not supported; use {' or '.join(METHODS)}")
    return 0, "connected"
