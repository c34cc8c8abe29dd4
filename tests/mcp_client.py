"""An MCP client for the tests, on the official Python SDK (`mcp`).

    mcp_client.py stdio CHECKHOST_BINARY ARG...   # runs `checkhost mcp ARG...`
    mcp_client.py http URL TOKEN

It connects, then reads one request per line on stdin and answers each with
one JSON line on stdout, so the Rust test drives the session step by step:

    {"op": "tools"}                          -> {"tools": [{name, inputSchema, outputSchema}]}
    {"op": "call", "tool": T, "args": {...}} -> {"isError", "text", "structured"} or {"error"}
    {"op": "resources"}                      -> {"resources": [uri...]}
    {"op": "read", "uri": U}                 -> {"text"} or {"error"}
    {"op": "prompt", "name": N, "args": {}}  -> {"text"} or {"error"}
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def answer(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def text_of(content):
    return "\n".join(getattr(block, "text", "") for block in content)


async def serve(session):
    await session.initialize()
    answer({"ready": True})
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "tools":
                listed = await session.list_tools()
                answer({"tools": [
                    {"name": t.name, "inputSchema": t.input_schema, "outputSchema": t.output_schema}
                    for t in listed.tools
                ]})
            elif op == "call":
                result = await session.call_tool(request["tool"], request.get("args", {}))
                answer({
                    "isError": bool(result.is_error),
                    "text": text_of(result.content),
                    "structured": result.structured_content,
                })
            elif op == "resources":
                listed = await session.list_resources()
                answer({"resources": [str(r.uri) for r in listed.resources]})
            elif op == "read":
                read = await session.read_resource(request["uri"])
                answer({"text": "\n".join(getattr(c, "text", "") for c in read.contents)})
            elif op == "prompt":
                prompt = await session.get_prompt(request["name"], request.get("args", {}))
                answer({"text": "\n".join(text_of([m.content]) for m in prompt.messages)})
            else:
                answer({"error": f"unknown op {op}"})
        except Exception as e:  # an MCP error: the test reads its message
            answer({"error": str(e)})


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        # The SDK hands a server only a few variables unless told: the
        # secrets and cache folder come from the test.
        params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await serve(session)
    elif mode == "http":
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        url, token = sys.argv[2], sys.argv[3]
        headers = {"Authorization": f"Bearer {token}"}
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await serve(session)
    else:
        raise SystemExit(f"unknown mode {mode}")


asyncio.run(main())
