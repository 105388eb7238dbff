"""The one path every call takes between the gateway and a backend.

``engine`` (``PolicyEngine``: timeout, allow/deny, readOnly, payload, retries,
call records; a refusal is raised as ``PolicyRefusal`` for every method),
``service`` (``ServicePolicy``, one service's policy state, and
``PolicedService``, the protocol of what the engine reads of a service),
``limits`` (concurrency queue, rate limit), ``cache`` (result cache),
``breaker`` (circuit breaker). Must not: speak MCP framing to clients or turn
errors into answers (that is ``runtimed.gateway``), import the supervisor, or
know which kind of backend serves a call.
"""
