"""Plumbing that knows nothing about NAS: errors, value checks, atomic writes, JSON reading, provenance (imports
nothing of ours outside core/).
"""
