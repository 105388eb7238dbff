"""The daemon's HTTP surface besides the gateway's ``/mcp`` endpoints: the ASGI
app (``asgi``: routes in match order, ``/healthz``, the ``/mcp`` fast path),
access control (``security``), the REST API (``api``, ``audit``, ``profiles``,
``bootstrap_api``, ``tokens_api``), ``/metrics`` (``metrics``), the status page (``status``),
what routes are given (``context.ApiContext``) and exceptions into JSON error
responses (``errors``).

Must not: hold lifecycle, policy or protocol logic; each route calls the part
that owns the concept, given to it explicitly (never ``request.app.state``).
"""
