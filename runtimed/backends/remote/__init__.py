"""Remote MCP servers over HTTP: the backend (``backend``), its two
transports (``streamable``: Streamable HTTP in both eras; ``sse``: the old
HTTP+SSE transport), what they do with upstream messages (``messages``), the
HTTP plumbing (``http``, ``h1``), the SSRF host allowlist (``hosts``) and
``authRef`` resolution (``secrets``).

Must not: be imported outside ``runtimed.backends`` except through
``runtimed.backends``' factory.
"""
