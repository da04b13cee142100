"""Generated gRPC stubs of the tierq.v1 API (``make proto``); do not edit."""
