"""The MCP protocol vocabulary shared by the gateway, the backends and
``runtimectl``: versions and eras (``versions``), JSON-RPC codes, errors and
message builders (``jsonrpc``).

Adding a protocol version touches this package only. Must not: hold
sessions, services, HTTP routing or any I/O.
"""
