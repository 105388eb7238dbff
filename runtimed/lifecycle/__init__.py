"""Lifecycle supervision: one ``ServiceRuntime`` per registered service
(``service``: its state, log, interface snapshot and views) and the
``Supervisor`` that holds the set and makes every change of state: boot and
shutdown, transitions, restart policy, quarantine, probes and interface
snapshots (``supervisor``).

Must not: speak a transport (that is ``runtimed.backends``), enforce call
policies (``runtimed.policy``) or speak MCP to clients (``runtimed.gateway``).
"""
