"""MCP servers the tests run as processes (each a script: ``python tests/upstreams/<name>.py``),
over streamable HTTP, legacy SSE or stdio; ``test_stdio_fixtures.py`` proves the stdio ones
(and the npm servers' stdio modes) by speaking to them directly, without the gateway;
``test_oidc_fixture.py`` proves the OAuth authorization server of the auth tests
(``tests/support/oauth.py``) the same way.
"""
