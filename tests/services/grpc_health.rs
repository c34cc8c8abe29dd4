//! The `grpc-health` strategy against a local gRPC server.
