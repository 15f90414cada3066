"""Helpers shared by the tests (importable as `helpers`: pytest's `pythonpath` has tests/)."""
