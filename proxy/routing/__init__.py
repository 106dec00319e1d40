"""Where a request goes: the routing table, balancing, circuit breakers, the retry budget, and the
per-app ``Guard`` that holds them between requests."""
