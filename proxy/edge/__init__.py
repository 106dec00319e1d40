"""The edge: what every request meets before the data plane (overload shedding, graceful shutdown)."""
