"""The daemon's HTTP surface besides ``/mcp``: access control (``security``),
the REST API (``api``, ``bootstrap_api``), ``/metrics`` (``metrics``) and the
status page (``status``).

Must not: hold lifecycle, policy or protocol logic; each route calls the part
that owns the concept.
"""
