"""The `{{name}}` strategy: one TCP connection per run, opened with
wasi:sockets; `exec` answers CONNECT and PING with the connect timing.

Build it with `checkhost plugin build`; the logic it tests lives in check.py,
the client resource in strategy_plugin.py (componentize-py looks for it there).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import (
    instance_network,
    ip_name_lookup,
    monotonic_clock,
    network,
    poll,
    tcp_create_socket,
    types,
)

import check
from strategy_plugin import Client

NS_PER_MS = 1_000_000

TRANSPORT_ERRORS = {
    "refused": types.TransportError_Refused,
    "timeout": types.TransportError_Timeout,
    "denied": types.TransportError_Denied,
    "dns": types.TransportError_Dns,
    "other": types.TransportError_Other,
}


class StrategyPlugin(exports.StrategyPlugin):
    def describe(self) -> types.StrategyInfo:
        return types.StrategyInfo(
            id="{{name}}",
            display_name="{{name}}",
            description="A TCP connection; CONNECT and PING report its connect time",
            config_schema=json.dumps(check.CONFIG_SCHEMA),
            config_version=1,
            result_schema=json.dumps(check.RESULT_SCHEMA),
        )

    def migrate(self, from_version: int, config_json: str) -> str:
        return config_json

    def connect(self, config_json: str, ctx: types.RunContext) -> Client:
        try:
            host, port, timeout_ms = check.parse_config(config_json)
        except ValueError as e:
            raise Err(types.TransportError_BadConfig(str(e)))
        net = instance_network.instance_network()
        # One deadline for name lookup and connect together.
        with monotonic_clock.subscribe_duration(timeout_ms * NS_PER_MS) as deadline:
            started = monotonic_clock.now()
            address = resolve(net, host, deadline, timeout_ms)
            resolved = monotonic_clock.now()
            socket, input_stream, output_stream = open_tcp(net, address, port, deadline, f"{host}:{port}", timeout_ms)
            connected = monotonic_clock.now()
        timings = types.Timings(
            dns_ms=(resolved - started) / NS_PER_MS,
            connect_ms=(connected - resolved) / NS_PER_MS,
            tls_ms=None,
            wait_ms=None,
            transfer_ms=None,
        )
        return Client(socket, input_stream, output_stream, timings)


def resolve(net, host, deadline, timeout_ms) -> network.IpAddress:
    """The first address of `host` (an IP address resolves to itself)."""
    what = f"cannot resolve `{host}`"
    with call(what, ip_name_lookup.resolve_addresses, net, host) as addresses:
        address = when_ready(addresses, addresses.resolve_next_address, deadline, what, timeout_ms)
    if address is None:
        raise transport_error("dns", f"`{host}` has no address")
    return address


def open_tcp(net, address, port, deadline, target, timeout_ms):
    """(socket, input stream, output stream) connected to `address`."""
    if isinstance(address, network.IpAddress_Ipv4):
        family = network.IpAddressFamily.IPV4
        remote = network.IpSocketAddress_Ipv4(network.Ipv4SocketAddress(port, address.value))
    else:
        family = network.IpAddressFamily.IPV6
        remote = network.IpSocketAddress_Ipv6(network.Ipv6SocketAddress(port, 0, address.value, 0))
    what = f"connect to {target}"
    socket = call(what, tcp_create_socket.create_tcp_socket, family)
    call(what, socket.start_connect, net, remote)
    input_stream, output_stream = when_ready(socket, socket.finish_connect, deadline, what, timeout_ms)
    return socket, input_stream, output_stream


def when_ready(subject, attempt, deadline, what, timeout_ms):
    """Calls `attempt` until it stops answering would-block, waiting for
    `subject` in between, until the deadline."""
    while True:
        try:
            return attempt()
        except Err as e:
            if e.value != network.ErrorCode.WOULD_BLOCK:
                raise transport_error(*check.failure(e.value.name, what)) from None
        with subject.subscribe() as ready:
            if 0 not in poll.poll([ready, deadline]):
                raise transport_error("timeout", f"{what}: no answer within {timeout_ms} ms")


def call(what, function, *args):
    """Calls a wasi:sockets function; its error code becomes a transport
    error naming `what`."""
    try:
        return function(*args)
    except Err as e:
        raise transport_error(*check.failure(e.value.name, what)) from None


def transport_error(kind, message) -> Err:
    return Err(TRANSPORT_ERRORS[kind](message))
