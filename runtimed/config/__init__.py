"""What a user declares: the service manifest (``manifest``), changes to one as
data (``changes``: merge patches and field diffs) and the daemon's settings
(``settings``: flags, ``RUNTIMED_*``, ``config.toml``, defaults).

Owns validation of both, with messages that name the field. Must not: persist
anything, start anything, or know how a service is run.
"""
