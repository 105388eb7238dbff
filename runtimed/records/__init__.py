"""What the daemon records about calls: analytics and audit (``analytics``),
intent capture (``intents``) and the redaction every captured value passes
(``redaction``).

Must not: serve HTTP (the routes are in ``runtimed.http``) or change a call.
"""
