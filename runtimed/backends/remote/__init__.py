"""Remote MCP servers over HTTP: the backend (``backend``), the interface of
its transports (``connection``) and the two of them (``streamable``:
Streamable HTTP in both eras; ``sse``: the old HTTP+SSE transport; what they
do with upstream messages is ``runtimed.backends.messages``), the HTTP plumbing (``http``: the
clients, redirects, reading; ``h1``: the lean HTTP/1.1 client; ``faults``:
wire errors and error statuses as ``BackendFault``), the SSRF host allowlist
(``hosts``), the refusal of the daemon's own endpoint (``selfloop``) and
``authRef`` resolution (``secrets``).

Must not: be imported outside ``runtimed.backends`` except through
``runtimed.backends``' factory.
"""
