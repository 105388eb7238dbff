"""runtimed: a gateway control plane for MCP services."""

__version__ = "0.1.0"
