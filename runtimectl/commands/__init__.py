"""``runtimectl``'s commands, one module per group, each with a
``register(app)`` that ``runtimectl.cli`` calls: ``services`` (add, add-all,
apply, list, status, start/stop/restart/unquarantine, introspect, remove),
``show`` (show, logs), ``tools`` (tools, call), ``pins`` (approve),
``profiles`` (profile create, list, show, edit, remove), ``auth`` (login, status,
logout: sign-ins to OAuth-protected remote services), ``tokens`` (token
create, list, revoke), ``bootstrap``, ``imports``
(``import --from CLIENT|FILE``; the clients' files are read by
``runtimectl.importers``), ``doctor``, ``gateway`` (``gateway serve
--stdio``; the relaying is ``runtimectl.bridge``) and ``daemon`` (start, stop,
status in the background; install/uninstall a systemd unit or launchd agent).
``manifests`` builds manifests from flags and files for ``services``;
``editor`` is the editor loop of ``edit`` and ``profile edit``.

Shared options, the daemon client and output helpers come from
``runtimectl.context``. Must not: import ``runtimectl.cli`` (no import cycle).
"""
