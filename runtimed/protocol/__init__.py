"""The MCP protocol vocabulary shared by the gateway, the backends and
``runtimectl``: versions and eras (``versions``), ``_meta`` keys (``meta``),
header names (``headers``), JSON-RPC codes, errors and message builders
(``jsonrpc``), the SSE decoder (``sse``) and the ``JSON`` alias (``types``).

Adding a protocol version touches ``versions`` only. Must not: hold sessions,
services, HTTP routing or any I/O; nothing here imports from outside this
package except ``runtimed.errors``.
"""
