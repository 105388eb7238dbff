"""Client bootstrap: wiring Codex and Claude Code (and a project's
``AGENTS.md``) to the gateway, undoing it, and reporting how they are wired.

``core`` plans, applies and reports; ``codex``, ``claude`` and ``agents`` edit
one client's file each; ``files`` owns file safety (backups, atomic writes,
rollback); ``model`` the data. Must not: talk to the daemon.
"""
