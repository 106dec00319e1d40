"""The ``/me`` sub-app: a virtual key sees its own limits, budget, usage and provider keys."""
