"""The one path every call takes between the gateway and a backend.

``engine`` (``PolicyEngine``: timeout, allow/deny, readOnly, payload, retries,
call records), ``limits`` (concurrency queue, rate limit), ``cache`` (result
cache), ``breaker`` (circuit breaker). Must not: speak MCP framing to clients
(that is ``runtimed.gateway``) or know which kind of backend serves a call.
"""
