"""The gRPC servers the grpc-health tests check, from grpcio.

Usage: grpc_health_server.py HEALTH_PORT BARE_PORT (0 picks a free port).
HEALTH_PORT serves grpc.health.v1 with "" and "shop" SERVING and "db"
NOT_SERVING; BARE_PORT serves no service at all, so a health check there
gets UNIMPLEMENTED. Both refuse a call carrying `x-deny` metadata with
PERMISSION_DENIED. Prints "ready HEALTH BARE" once both listen, or
"missing MODULE" when grpcio is not installed, and runs until its
standard input closes (the test process ended).
"""

import sys
from concurrent import futures

try:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
except ImportError as error:
    print(f"missing {error.name}", flush=True)
    sys.exit(3)


class DenyByMetadata(grpc.ServerInterceptor):
    """Shows that metadata arrives, and answers a message that needs
    percent-encoding (non-ASCII, `%`)."""

    def intercept_service(self, continuation, details):
        deny = dict(details.invocation_metadata).get("x-deny")
        if deny is None:
            return continuation(details)

        def refuse(request, context):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"denied for {deny} ✗ 100%")

        return grpc.unary_unary_rpc_method_handler(refuse)


def serve(port, with_health):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), interceptors=[DenyByMetadata()]
    )
    if with_health:
        servicer = health.HealthServicer()
        serving = health_pb2.HealthCheckResponse
        servicer.set("", serving.SERVING)
        servicer.set("shop", serving.SERVING)
        servicer.set("db", serving.NOT_SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


health_server, health_port = serve(int(sys.argv[1]), True)
bare_server, bare_port = serve(int(sys.argv[2]), False)
print("ready", health_port, bare_port, flush=True)
sys.stdin.read()
health_server.stop(0)
bare_server.stop(0)
