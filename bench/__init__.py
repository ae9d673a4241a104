"""Benchmarks: fanout measured end to end over HTTP, structured so peers can run beside it."""
