"""Stdio MCP servers run as child processes: the backend (``backend``: which
child serves a call, start, probe, introspection), the MCP session over a
child's stdin and stdout (``session``) and the process itself (``process``:
environment, limits, stderr log, shutdown, pid files).

Must not: be imported outside ``runtimed.backends`` except through
``runtimed.backends``' factory.
"""
