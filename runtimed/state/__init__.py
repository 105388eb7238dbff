"""What the daemon persists: the crash-safe file writer (``files``), the
registry of services and the state dir's lock (``registry``), the event stream
with its JSON Lines logs (``events``), each service's log (``logs``) and the
quarantines kept across restarts (``quarantines``); the state-store contract
(``store``) and the Redis store (``redis``: one Redis shared by N replicas,
durable with ``appendonly yes`` and ``appendfsync always``).

Owns durability: a change is on disk before it is acknowledged, and a corrupt
file never costs the last good state. Must not: decide lifecycle or policy.
"""
