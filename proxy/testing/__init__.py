"""Helpers shipped with the package for tests and benches (real processes, no fakes)."""
