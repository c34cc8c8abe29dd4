"""The client resource of the `{{name}}` strategy: componentize-py finds an
exported resource in the module named after its interface."""

from componentize_py_types import Err
from wit_world.exports import strategy_plugin
from wit_world.imports import types

import check


class Client(strategy_plugin.Client):
    """A live connection for the run; the host frees it with the run's store."""

    def __init__(self, socket, input_stream, output_stream, timings: types.Timings):
        self._socket = socket
        self._input_stream = input_stream
        self._output_stream = output_stream
        self._timings = timings

    def exec(self, req: types.Request) -> types.Response:
        try:
            status, status_text = check.answer(req.method)
        except ValueError as e:
            raise Err(types.TransportError_Protocol(str(e)))
        return types.Response(status, status_text, [], b"", self._timings)

    def timings(self) -> types.Timings:
        return self._timings
