"""The test suite. Its folders mirror the packages of ``runtimed`` (config, state, lifecycle,
policy, backends/remote, backends/wasm, protocol, gateway, records, http, bootstrap) and
``runtimectl``; each holds the unit tests of its package and the end-to-end tests (real
``runtimed`` processes, real upstreams) of what that package does; ``e2e/`` holds those that
span the whole daemon. ``*/test_inprocess.py`` drive the daemon's ASGI app in this process
(tests/support/inprocess.py). Helpers: ``support/`` (daemons, upstreams, the in-process app),
``upstreams/`` (MCP servers run as processes, and the tests proving the stdio ones), ``thirdparty/`` (pinned npm MCP servers,
installed by ``.ci/run``; support/thirdparty.py runs them), ``wasm/`` (WAT fixtures and the backend
harness), ``policy/harness.py``; ``conformance/`` runs the official MCP conformance suite.
"""
