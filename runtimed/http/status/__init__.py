"""The status page and its live event stream (templates, static assets, SSE)."""
