"""Observability: JSON logs and the access log, Prometheus metrics."""
