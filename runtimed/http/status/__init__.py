"""The status page and its live event stream (templates, static assets with the vendored chart library, SSE)."""
