"""Client bootstrap: wiring Codex and Claude Code (and a project's
``AGENTS.md``) to the gateway, undoing it, and reporting how they are wired.
The one implementation behind ``runtimectl bootstrap ...``, ``runtimectl
doctor`` and the API's bootstrap status; this module re-exports what they use.

``entries`` says what is written (the clients, transports and scopes, the
entry per client and transport, a profile's endpoint ``/mcp/@NAME`` and its
entry name ``runtimed-NAME``, the token's variable, input checks); ``locations`` where (the
file per client and scope, ``AGENTS.md``, the ``runtimectl`` path); ``plan``
plans adding or removing the entry (content, action, summary, notes), and
taking out of the same files the imported entries the gateway now serves
(``replace``: the caller says which and whether each still matches);
``apply`` applies a plan all-or-nothing; ``report`` reads the entries back
and finds drift. ``codex``, ``claude`` and ``agents`` edit one file format
each; ``files`` owns file safety (backups, atomic writes, rollback);
``model`` the data. Must not: talk to the daemon (callers pass the endpoint,
whether a token is configured and the imported services), print, or ever
put a token value into a plan summary, note or diff. See
docs/spec/bootstrap.md for the exact formats.
"""

from runtimed.bootstrap.apply import apply_plan
from runtimed.bootstrap.entries import (
    CLIENTS,
    SCOPES,
    TOKEN_ENV,
    TRANSPORTS,
    check_token_env,
    desired_entry,
    endpoint_profile,
    entry_name,
    profile_endpoint,
)
from runtimed.bootstrap.locations import Locations, config_path, default_runtimectl_path
from runtimed.bootstrap.model import (
    BootstrapError,
    ConfigParseError,
    EntryStatus,
    FileChange,
    Imported,
    Plan,
    RemovedEntry,
    Result,
)
from runtimed.bootstrap.plan import plan_bootstrap, plan_remove
from runtimed.bootstrap.report import status

__all__ = [
    "CLIENTS",
    "SCOPES",
    "TOKEN_ENV",
    "TRANSPORTS",
    "BootstrapError",
    "ConfigParseError",
    "EntryStatus",
    "FileChange",
    "Imported",
    "Locations",
    "Plan",
    "RemovedEntry",
    "Result",
    "apply_plan",
    "check_token_env",
    "config_path",
    "default_runtimectl_path",
    "desired_entry",
    "endpoint_profile",
    "entry_name",
    "plan_bootstrap",
    "plan_remove",
    "profile_endpoint",
    "status",
]
