"""The MCP gateway: one Streamable HTTP endpoint for every service, both eras.

``server`` (``Gateway``: the wiring), ``transport`` (the endpoints),
``sessions`` and ``stateless`` (the two eras), ``catalog`` and ``naming``
(aggregation), ``router`` (forwarding through the policy path), ``relay``
(server-to-client traffic), ``exchange`` (one request's answer), ``control``
(built-in tools). See docs/spec/gateway.md.
"""

from runtimed.gateway.server import Gateway

__all__ = ["Gateway"]
