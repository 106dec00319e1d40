"""The ``efflux-gateway`` command line."""
