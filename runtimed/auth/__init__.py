"""OAuth 2.1 as the MCP authorization specification uses it, on the gateway's two sides.

``resource``: the gateway as a resource server (``--oauth-issuer``): which access tokens ``/mcp``
accepts (JWTs validated against the issuer's JWKS, with key rotation; opaque tokens through
introspection), the Protected Resource Metadata it serves, the 401/403 challenges, and the
``Principal`` a valid token names. The JOSE mechanics are ``joserfc``'s (no hand-written crypto).

``tokens``: scoped access tokens (``rtk_<id>_<secret>``, kept hashed) that reach one profile's
endpoint: their format, creation, revocation and checking; stored through callables the daemon
gives (this package never imports the store).

Must not: route MCP, know about services or backends, or log a token.
"""
