"""Lifecycle supervision: one ``ServiceRuntime`` per registered service, its
states, restart policy, quarantine, probes and interface snapshots
(``supervisor``).

Must not: speak a transport (that is ``runtimed.backends``) or enforce call
policies (``runtimed.policy``).
"""
