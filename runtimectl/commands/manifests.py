"""Manifests from the command line: ``add``'s flags and ``apply``'s files
turned into the manifest documents the daemon's ``/api/services`` takes.

Owns deriving a service name from a URL, a file or a stdio command line,
parsing ``--rate-limit``, ``--env``, sizes and the ``--oauth-*`` options
(``oauth_options``), building a manifest from flags
(remote, WASM or stdio origin), the merge patches that change a registered
service (what ``add``'s flags gave: ``update_patch``; ``set --unset``:
``unset_patch``), the hint that points a command given as TARGET to ``--``,
reading a manifest file (JSON or TOML: one document, a list, or
``{"services": [...], "profiles": [...]}``; ``MCPService`` and ``MCPProfile``
documents, told apart by ``is_profile``) and resolving a service's relative
paths against the file's folder. Bad
input is a usage error (exit 2). Must not: talk to the daemon or validate what
the daemon validates (the schema); the one exception, a credential-looking
``--env`` with a literal value, is refused here with the daemon's own rule
(``looks_like_secret_name``) so the value never leaves the shell.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from runtimectl.context import usage
from runtimed.config.manifest import is_env_reference, looks_like_secret_name
from runtimed.config.profile import PROFILE_KIND

_NAME_CLEAN = re.compile(r"[^a-z0-9_-]+")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|sec|s|minute|min|m|hour|h|day|d)\s*$")
_PER = {"second": "second", "sec": "second", "s": "second", "minute": "minute", "min": "minute", "m": "minute",
        "hour": "hour", "h": "hour", "day": "day", "d": "day"}
_SIZE = re.compile(r"^\s*(\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*$", re.IGNORECASE)
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WASM_SUFFIXES = (".wasm", ".wat")


def _normalise_name(base: str, fallback: str = "service") -> str:
    """``base`` under the name rule ``[a-z0-9][a-z0-9_-]{0,31}``: lower case, other characters as ``-``."""
    name = _NAME_CLEAN.sub("-", base.lower()).strip("-_") or fallback
    if not name[0].isalnum():
        name = "s" + name
    return name[:32].rstrip("-_")


def derive_name(target: str) -> str:
    """A service name from a URL's host (or ``local-<port>``) or a file's stem."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        host = (parts.hostname or "remote").split(".")
        base = host[0] if host[0] not in ("127", "localhost", "www", "api", "mcp") or len(host) == 1 else host[1]
        if parts.hostname in ("127.0.0.1", "localhost", "::1"):
            base = f"local-{parts.port or 80}"
    else:
        base = Path(target).stem
    return _normalise_name(base)


# -- a name from a stdio command line ------------------------------------------------------------------------------
#
# The name says which server it is, not how it is launched: a runner (npx, uvx, python -m, node, docker run...) and
# its own flags are skipped, then the package, module, image or script names the service. Words that name nothing
# (index, main, server, build, dist...) defer to the folder above, or to an npm package's scope.

_GENERIC = frozenset({
    "index", "main", "server", "cli", "app", "run", "start", "__main__", "__init__", "mod", "bin", "build", "dist",
    "out", "lib", "src", "cmd", "target", "release", "debug", "scripts", "script", "stdio", "mcp", "node_modules",
    "entry", "entrypoint", "package", "packages", "tmp", "home", "usr", "local", "opt",
})
_SCRIPT_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".py", ".pyz", ".pyw", ".jar", ".sh", ".bash",
                    ".rb", ".pl", ".php", ".exe")
_INTERPRETER_FOR = {".py": "python3", ".js": "node", ".mjs": "node", ".cjs": "node", ".sh": "sh", ".ts": "npx tsx"}
_NPM_RUNNERS = frozenset({"npx", "pnpx", "bunx"})
_NPM_VALUE_FLAGS = frozenset({"-p", "--package", "-c", "--call", "--registry", "--cache", "--prefix", "-w",
                              "--workspace", "--userconfig"})
_UV_VALUE_FLAGS = frozenset({
    "--from", "--with", "--with-editable", "--with-requirements", "--python", "-p", "--index", "--index-url",
    "--extra-index-url", "--default-index", "--find-links", "-f", "--directory", "--project", "--package",
    "--env-file", "--extra", "--group", "--only-group", "--constraints", "-c", "--overrides", "--cache-dir",
    "--config-file", "--python-preference", "--index-strategy", "--keyring-provider", "--link-mode", "--color",
    "--exclude-newer", "--spec", "--pip-args",  # the last two: pipx run
})
_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)?)?(\.exe)?$|^py$")
_PYTHON_VALUE_FLAGS = frozenset({"-X", "-W", "-Q"})
_INTERPRETERS = frozenset({"node", "nodejs", "deno", "bun", "tsx", "ts-node", "bash", "sh", "zsh", "ruby", "perl",
                           "php"})
_INTERPRETER_VALUE_FLAGS = frozenset({
    "-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file", "--conditions", "-C",
    "--inspect-port", "--title", "--config", "--cert", "--import-map", "--lock", "--location", "--v8-flags",
    "--tsconfig", "-I",
})
_INLINE_CODE_FLAGS = frozenset({"-c", "-e", "--eval", "-p", "--print"})
_CONTAINER_RUNNERS = frozenset({"docker", "podman", "nerdctl"})
_CONTAINER_VALUE_FLAGS = frozenset({
    "-e", "--env", "--env-file", "-v", "--volume", "--mount", "--name", "--network", "--net", "-p", "--publish",
    "-w", "--workdir", "-u", "--user", "--entrypoint", "--platform", "-l", "--label", "--label-file", "--add-host",
    "--cpus", "-m", "--memory", "--pull", "--restart", "--runtime", "--security-opt", "--cap-add", "--cap-drop",
    "--device", "--dns", "--hostname", "-h", "--ipc", "--pid", "--tmpfs", "--ulimit", "--log-driver", "--log-opt",
    "--gpus", "--shm-size", "--stop-signal", "--stop-timeout", "--userns", "--cidfile", "--cgroupns",
})
_VERSION_TAIL = re.compile(r"[-_]v?\d+(\.\d+)*([-.][A-Za-z0-9]+)*$")


def _first_positional(args: list[str], value_flags: frozenset[str]) -> int | None:
    """The index of the first word in ``args`` that is not a runner flag (nor the value of one that takes one)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return i + 1 if i + 1 < len(args) else None
        if a.startswith("-") and len(a) > 1:
            i += 2 if a in value_flags else 1
            continue
        return i
    return None


def _flag_value(args: list[str], flags: tuple[str, ...]) -> str | None:
    """The value of the first of ``flags`` in ``args`` (``--flag VALUE`` or ``--flag=VALUE``)."""
    for i, a in enumerate(args):
        if a in flags and i + 1 < len(args):
            return args[i + 1]
        key, eq, value = a.partition("=")
        if eq and key in flags:
            return value
    return None


def _script_name(path: str, base: Path | None) -> str:
    """A script's stem, or, when the stem names nothing (index.js, build/main.py), the nearest folder that does.

    A relative path is taken from ``base``, so ``node build/index.js`` run in ``~/weather`` is ``weather``.
    """
    p = PurePosixPath(os.path.expanduser(path))
    stem = p.stem if p.suffix.lower() in _SCRIPT_SUFFIXES else p.name
    if stem.lower() not in _GENERIC:
        return stem
    full = PurePosixPath(os.path.normpath(str(base / p) if base is not None and not p.is_absolute() else str(p)))
    for folder in reversed(full.parent.parts):
        if folder not in ("/", ".", "..") and not folder.startswith(".") and folder.lower() not in _GENERIC:
            return folder
    return stem


def _npm_package_name(spec: str) -> str | None:
    """``@scope/name@1.2.3`` -> ``name`` (``scope-name`` when the name alone says nothing, as ``@playwright/mcp``)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", spec):  # github:o/r, git+https://..., https://.../x.tgz, file:../x
        tail = spec.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1].split(":")[-1]
        return tail.removesuffix(".git").removesuffix(".tgz") or None
    if spec.startswith((".", "/", "~")):
        return PurePosixPath(spec).name or None
    scope = ""
    rest = spec
    if spec.startswith("@"):
        scope, _, rest = spec[1:].partition("/")
    rest = rest.split("@", 1)[0]
    if scope and (not rest or rest.lower() in _GENERIC):
        return f"{scope}-{rest}" if rest else scope
    return rest or None


def _py_package_name(spec: str) -> str | None:
    """``mcp-server-fetch==1.0``, ``pkg[extra]``, ``git+https://host/o/repo.git@v1`` -> the distribution's name."""
    if "://" in spec:
        last = urlsplit(spec.split("#", 1)[0]).path.rstrip("/").rsplit("/", 1)[-1]
        spec = last.split("@", 1)[0].removesuffix(".git")
    name = re.split(r"[\[<>=!~@;\s]", spec, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name) or None


def _module_name(module: str) -> str | None:
    """``clari_revops_mcp.server`` -> ``clari-revops-mcp``: the last part that names something, ``_`` as ``-``."""
    parts = [p for p in module.split(".") if p]
    named = [p for p in parts if p.lower() not in _GENERIC]
    chosen = named[-1] if named else (parts[0] if parts else "")
    return chosen.replace("_", "-") or None


def _image_name(image: str) -> str | None:
    """``ghcr.io/github/github-mcp-server:1.2`` -> ``github-mcp-server`` (the path segment above when generic)."""
    segments = image.split("@", 1)[0].split("/")
    names = [s.split(":", 1)[0] if i == len(segments) - 1 else s for i, s in enumerate(segments)]
    last = names[-1]
    if last.lower() in _GENERIC and len(names) > 1 and "." not in names[-2] and ":" not in names[-2]:
        return f"{names[-2]}-{last}"
    return last or None


def _python_name(args: list[str], base: Path | None) -> str | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m" and i + 1 < len(args):
            return _module_name(args[i + 1])
        if a.startswith("-m") and len(a) > 2 and not a.startswith("--"):
            return _module_name(a[2:])
        if a in ("-c",) or (a.startswith("-c") and not a.startswith("--")):
            return None  # inline code names nothing
        if a.startswith("-") and len(a) > 1:
            i += 2 if a in _PYTHON_VALUE_FLAGS else 1
            continue
        return _script_name(a, base)
    return None


def _stdio_base(command: str, args: list[str], base: Path | None) -> str | None:
    """The word that names the service a command line runs (before normalising), or None."""
    prog = PurePosixPath(command).name.lower().removesuffix(".exe").removesuffix(".cmd")
    if prog == "env":  # env [-i] [NAME=value...] COMMAND ARGS...
        rest = list(args)
        while rest and (rest[0].startswith("-") or "=" in rest[0]):
            rest.pop(0)
        return _stdio_base(rest[0], rest[1:], base) if rest else None
    if (prog in ("pnpm", "yarn") and args[:1] == ["dlx"]) or (prog == "npm" and args[:1] in (["exec"], ["x"])) \
            or (prog == "bun" and args[:1] == ["x"]):
        prog, args = "npx", args[1:]
    if prog in _NPM_RUNNERS:
        i = _first_positional(args, _NPM_VALUE_FLAGS)
        return _npm_package_name(args[i]) if i is not None else None
    if (prog == "uv" and args[:2] == ["tool", "run"]) or (prog == "pipx" and args[:1] == ["run"]):
        prog, args = "uvx", args[2:] if prog == "uv" else args[1:]
    if prog == "uvx":
        i = _first_positional(args, _UV_VALUE_FLAGS)
        return _py_package_name(args[i]) if i is not None else None
    if prog == "uv" and args[:1] == ["run"]:
        folder = _flag_value(args, ("--directory", "--project"))
        where = base / os.path.expanduser(folder) if folder and base is not None else (Path(folder) if folder else base)
        i = _first_positional(args[1:], _UV_VALUE_FLAGS)
        if i is None:
            return None
        word, rest = args[1 + i], args[2 + i:]
        if _PYTHON.match(word.lower()):
            return _python_name(rest, where)
        if "/" in word or word.lower().endswith(_SCRIPT_SUFFIXES):
            return _script_name(word, where)
        return _py_package_name(word)
    if _PYTHON.match(prog):
        return _python_name(args, base)
    if prog in _INTERPRETERS:
        if prog in ("deno", "bun") and args[:1] == ["run"]:
            args = args[1:]
        if any(a in _INLINE_CODE_FLAGS for a in args[:_first_positional(args, _INTERPRETER_VALUE_FLAGS) or 0]):
            return None
        i = _first_positional(args, _INTERPRETER_VALUE_FLAGS)
        if i is None:
            return None
        word = args[i]
        if word.startswith(("npm:", "jsr:")):
            return _npm_package_name(word[4:])
        if word.startswith(("http://", "https://")):
            return _script_name(urlsplit(word).path or "/", None)
        return _script_name(word, base)
    if prog in _CONTAINER_RUNNERS and args[:1] == ["run"]:
        i = _first_positional(args[1:], _CONTAINER_VALUE_FLAGS)
        return _image_name(args[1 + i]) if i is not None else None
    if prog == "java":
        jar = _flag_value(args, ("-jar",))
        return _VERSION_TAIL.sub("", PurePosixPath(jar).stem) if jar else None
    if "/" in command:  # a program given by its path: ./my-server, /opt/x/bin/server
        return _script_name(command, base)
    return PurePosixPath(command).name


def derive_stdio_name(command: str, args: list[str], base: Path | None = None) -> str:
    """A readable, deterministic service name from a stdio command line.

    ``npx -y @modelcontextprotocol/server-filesystem /srv`` -> ``server-filesystem``; ``uvx mcp-server-fetch`` ->
    ``mcp-server-fetch``; ``python -m clari_revops_mcp.server`` -> ``clari-revops-mcp``; ``node build/index.js``
    -> the folder it runs in; ``./my-server --flag`` -> ``my-server``. ``base`` is the folder a relative script
    path is taken from (the service's ``--cwd``, else where ``runtimectl`` runs): it matters only for a script
    whose own name says nothing (``index.js``).
    """
    word = _stdio_base(command, list(args), base)
    fallback = _normalise_name(PurePosixPath(command).stem, "stdio")
    return _normalise_name(word, fallback) if word else fallback


# -- stdio flags -----------------------------------------------------------------------------------------------------

STDIO_LIMIT_FLAGS = {"memoryBytes": "--memory-bytes", "cpuSeconds": "--cpu-seconds", "openFiles": "--open-files",
                     "startTimeoutMs": "--start-timeout-ms"}


@dataclass(frozen=True)
class StdioFlags:
    """``add``'s stdio-only options as given: ``--env``, ``--cwd``, ``--per-client`` and the limits."""

    env: tuple[str, ...] = ()
    cwd: str | None = None
    per_client: bool = False
    limits: dict[str, int | None] = field(default_factory=dict)

    def given(self) -> list[str]:
        """The flags given, by name (``--env``, ``--cwd``...)."""
        named = [("--env", bool(self.env)), ("--cwd", self.cwd is not None), ("--per-client", self.per_client)]
        named += [(STDIO_LIMIT_FLAGS.get(k, k), v is not None) for k, v in self.limits.items()]
        return [flag for flag, present in named if present]


def parse_size(value: str, flag: str) -> int:
    """``4294967296``, ``512M``, ``4GiB`` -> bytes (K, M, G and T are powers of 1024)."""
    m = _SIZE.match(value)
    if not m or int(m.group(1)) <= 0:
        raise usage(f"{flag} must be a number of bytes greater than 0, optionally with K, M, G or T (powers of "
                    f"1024), e.g. 4G, not {value!r}")
    return int(m.group(1)) << (10 * "_kmgt".index((m.group(2) or "_").lower()))


def parse_env(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--env KEY=VALUE`` items as a dict. A name that looks like a credential needs a reference, ``env:VAR`` or
    ``file:relative/path`` (the daemon's own rule, ``looks_like_secret_name``): refused here, the value unshown."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise usage(f"--env must be KEY=VALUE (VALUE may be env:VAR or file:relative/path), not {key!r}")
        if not _ENV_KEY.match(key):
            raise usage(f"--env {key!r}: a name is letters, digits and '_', not starting with a digit")
        if key in env:
            raise usage(f"--env {key} is given twice")
        if value.startswith(("env:", "file:")) and not is_env_reference(value):
            raise usage(f"--env {key}: {value!r} is not a valid reference (env:VAR or file:relative/path)")
        if looks_like_secret_name(key) and not is_env_reference(value):
            raise usage(f"--env {key} looks like a credential, and a manifest holds no secrets (the API and the "
                        f"status page show it): give a reference instead of the value, --env {key}=env:{key} (a "
                        f"variable exported where runtimed runs) or --env {key}=file:relative/path (under the "
                        f"state dir's secrets/)")
        env[key] = value
    return env


def resolve_dir(value: str, flag: str, here: Path) -> str:
    """An existing folder as an absolute path (a relative one is taken from ``here``, ``~`` expanded)."""
    p = Path(os.path.expanduser(value))
    full = Path(os.path.normpath(p if p.is_absolute() else here / p))
    if not full.is_dir():
        raise usage(f"{flag} {value}: no such folder" if not full.exists() else f"{flag} {value}: not a folder")
    return str(full)


def _program(command: str, where: Path) -> str:
    """The program to run: a path (``./my-server``) made absolute from ``where``; a bare name is left for PATH."""
    expanded = os.path.expanduser(command)
    if "/" not in expanded:
        return command
    p = Path(os.path.normpath(expanded if os.path.isabs(expanded) else where / expanded))
    if not p.is_file():
        raise usage(f"{command}: no such file" + (f" (relative paths are taken from {where})"
                                                    if not os.path.isabs(expanded) else ""))
    if not os.access(p, os.X_OK):
        runner = _INTERPRETER_FOR.get(p.suffix.lower(), "INTERPRETER")
        raise usage(f"{command}: not executable: chmod +x it, or name its interpreter first: "
                    f"runtimectl add -- {runner} {shlex.quote(command)}")
    return str(p)


def stdio_origin(argv: list[str], flags: StdioFlags, here: Path) -> dict[str, Any]:
    """The ``stdio`` origin for ``add ... -- COMMAND ARGS...``; ``here`` is where runtimectl runs.

    ``--cwd`` becomes absolute; a program given by a relative path (``./my-server``) becomes absolute from
    ``--cwd`` (else ``here``); empty parts are left out (the daemon's defaults apply).
    """
    if not argv:
        raise usage("nothing after --: give the command that runs the server, e.g. runtimectl add -- npx -y PACKAGE")
    cwd = resolve_dir(flags.cwd, "--cwd", here) if flags.cwd is not None else None
    origin: dict[str, Any] = {"type": "stdio", "command": _program(argv[0], Path(cwd) if cwd else here)}
    if argv[1:]:
        origin["args"] = list(argv[1:])
    env = parse_env(flags.env)
    if env:
        origin["env"] = env
    if cwd:
        origin["cwd"] = cwd
    limits = {k: v for k, v in flags.limits.items() if v is not None}
    for key, value in limits.items():
        if value <= 0:
            raise usage(f"{STDIO_LIMIT_FLAGS.get(key, key)} must be greater than 0, not {value}")
    if limits:
        origin["limits"] = limits
    if flags.per_client:
        origin["clientSessions"] = "per-client"
    return origin


def relative_paths_in(args: list[str], here: Path) -> list[str]:
    """Arguments that look like paths relative to ``here`` and exist there (``build/index.js``, ``server.py``):
    without ``--cwd`` the server does not run here, so they would not be found."""
    found = []
    for a in args:
        if a.startswith("-") or os.path.isabs(a) or a.startswith("~") or "://" in a:
            continue
        if ("/" in a or a.lower().endswith(_SCRIPT_SUFFIXES)) and (here / a).exists():
            found.append(a)
    return found


# -- a command given where TARGET goes ---------------------------------------------------------------------------------

def is_target_like(word: str) -> bool:
    """A word that is meant as TARGET: a URL or a .wasm/.wat path."""
    return "://" in word or Path(word).suffix.lower() in WASM_SUFFIXES


def command_words(target: str) -> list[str] | None:
    """The command line a TARGET that is no URL nor .wasm/.wat file seems to be, or None.

    ``"npx -y pkg"`` (quoted) -> its words; an executable file or a program on PATH -> itself; a script
    (``server.py``) -> its interpreter and itself.
    """
    if any(c.isspace() for c in target.strip()):
        try:
            words = shlex.split(target)
        except ValueError:
            return None
        return words or None
    p = Path(target).expanduser()
    if p.is_file():
        if os.access(p, os.X_OK):
            return [target if "/" in target else f"./{target}"]
        runner = _INTERPRETER_FOR.get(p.suffix.lower())
        return [*runner.split(), target] if runner else None
    if "/" not in target and shutil.which(target):
        return [target]
    return None


def stdio_hint(words: list[str], options: list[str] | None = None) -> str:
    """``to run a stdio server put it after --: runtimectl add [--name NAME] -- npx -y pkg``."""
    opts = shlex.join(options) if options else "[--name NAME]"
    return f"to run a stdio server put it after --: runtimectl add {opts} -- {shlex.join(words)}"


def parse_labels(items: list[str]) -> dict[str, str]:
    """``--label key=value`` (repeatable) as a dict; a usage error names a malformed one."""
    labels: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise usage(f"--label must be key=value, not {item!r}")
        labels[k] = v
    return labels


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated flag as a list (None when the flag was not given)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_rate(value: str) -> dict[str, Any]:
    """``10/day`` -> ``{"calls": 10, "per": "day"}``."""
    m = _RATE.match(value)
    if not m or int(m.group(1)) <= 0:
        raise usage(f"--rate-limit must look like 10/day, 5/second, 100/minute or 1000/hour, not {value!r}")
    return {"calls": int(m.group(1)), "per": _PER[m.group(2)]}


OAUTH_GRANTS = ("authorization_code", "client_credentials")


def oauth_options(*, is_oauth: bool, client_id: str | None, client_secret_ref: str | None, scopes: str | None,
                  grant: str | None) -> dict[str, Any] | None:
    """The ``--oauth-*`` flags as a remote origin's ``oauth`` options (None: none given). They need the service's
    auth to be ``oauth`` (``is_oauth``: ``--auth oauth`` given, or for ``set`` the service's own); whether a grant
    has what it needs (client_credentials: a client id and a secret reference) is for the daemon to say."""
    given = {"--oauth-client-id": client_id, "--oauth-client-secret-ref": client_secret_ref,
             "--oauth-scopes": scopes, "--oauth-grant": grant}
    flags = [flag for flag, value in given.items() if value is not None]
    if not flags:
        return None
    if not is_oauth:
        verb = "applies" if len(flags) == 1 else "apply"
        raise usage(f"{', '.join(flags)} {verb} to a service that signs in with OAuth: give --auth oauth too")
    if grant is not None and grant not in OAUTH_GRANTS:
        raise usage(f"--oauth-grant must be authorization_code or client_credentials, not {grant!r}")
    options: dict[str, Any] = {}
    if grant is not None:
        options["grant"] = grant
    if client_id is not None:
        options["clientId"] = client_id
    if client_secret_ref is not None:
        options["clientSecretRef"] = client_secret_ref
    if scopes is not None:
        options["scopes"] = split_list(scopes) or []
    return options


def build_manifest(target: str | None, name: str | None, namespace: str | None, transport: str | None,
                   auth_ref: str | None, policy: dict[str, Any], description: str | None, labels: list[str],
                   restart: str | None, max_restarts: int | None, autostart: bool, command: list[str] | None = None,
                   stdio: StdioFlags | None = None, here: Path | None = None,
                   oauth: dict[str, Any] | None = None, pin_tools: bool | None = None) -> dict[str, Any]:
    """The ``MCPService`` manifest for a URL (remote_mcp), a .wasm/.wat file (local_wasm) or, given ``command``
    (the words after ``--``), a stdio server. ``here`` is where runtimectl runs (default: the working dir);
    ``oauth``: a remote origin's ``oauth`` options (``oauth_options``); ``pin_tools``: ``spec.pinTools``
    (None: not given)."""
    stdio = stdio or StdioFlags()
    here = here or Path.cwd()
    if target is not None and command is not None:
        raise usage(f"give either TARGET (a .wasm/.wat file or an http(s) URL) or a command after --, not both "
                    f"(TARGET {target!r}, command {shlex.join(command)!r})")
    if command is not None:
        if transport or auth_ref:
            raise usage("--transport and --auth-ref apply to remote URLs, not to stdio commands "
                        "(a stdio server's credential goes in its environment: --env KEY=env:VAR)")
        origin = stdio_origin(command, stdio, here)
        default_name = derive_stdio_name(command[0], command[1:], Path(origin.get("cwd") or here))
    elif target is None:
        raise usage("missing TARGET: a .wasm/.wat file, an http(s) URL, or a stdio server's command after --: "
                    "runtimectl add [--name NAME] -- npx -y PACKAGE")
    else:
        stdio_only = stdio.given()
        if stdio_only:
            kind = "remote URLs" if "://" in target else "WASM files"
            verb = "applies" if len(stdio_only) == 1 else "apply"
            raise usage(f"{', '.join(stdio_only)} {verb} to stdio servers (a command after --), not to {kind}")
        if target.startswith(("http://", "https://")):
            origin = {"type": "remote_mcp", "url": target}
            if transport:
                origin["transport"] = transport
            if auth_ref:
                origin["authRef"] = auth_ref
            if oauth:
                origin["oauth"] = oauth
        elif "://" in target:
            raise usage(f"TARGET must be an http(s) URL or a path to a .wasm/.wat file, not {target!r}")
        else:
            if transport or auth_ref:
                raise usage("--transport and --auth-ref apply to remote URLs, not to WASM files")
            path = Path(target).expanduser()
            if path.suffix not in WASM_SUFFIXES:
                words = command_words(target)
                if words:
                    raise usage(f"TARGET is a .wasm/.wat file or an http(s) URL, and {target!r} looks like a "
                                f"command: {stdio_hint(words)}")
                raise usage(f"{target}: a local tool must be a .wasm or .wat file (a stdio server's command goes "
                            f"after --: runtimectl add [--name NAME] -- COMMAND [ARGS...])")
            if not path.is_file():
                raise usage(f"{target}: no such file")
            origin = {"type": "local_wasm", "path": str(path.resolve())}
        default_name = derive_name(target)
    meta: dict[str, Any] = {"name": name or default_name}
    if description:
        meta["description"] = description
    if labels:
        meta["labels"] = parse_labels(labels)
    spec: dict[str, Any] = {"origin": origin, "policy": {k: v for k, v in policy.items() if v is not None},
                            "autostart": autostart}
    if namespace:
        spec["toolNamespace"] = namespace
    if pin_tools is not None:
        spec["pinTools"] = pin_tools
    if restart or max_restarts is not None:
        rp: dict[str, Any] = {}
        if restart:
            rp["mode"] = restart
        if max_restarts is not None:
            rp["maxRestarts"] = max_restarts
        spec["restartPolicy"] = rp
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": meta, "spec": spec}


def resolve_relative_paths(manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``manifest`` (changed in place) with its origin's relative paths taken from ``folder``, ``~`` expanded: a
    local_wasm ``path`` and a stdio ``cwd``. Absolute paths and anything the daemon will refuse stay as they are."""
    spec = manifest.get("spec")
    origin = spec.get("origin") if isinstance(spec, dict) else None
    if not isinstance(origin, dict):
        return manifest
    key = {"local_wasm": "path", "stdio": "cwd"}.get(str(origin.get("type")))
    value = origin.get(key) if key else None
    if key and isinstance(value, str) and value and not os.path.isabs(value):
        expanded = os.path.expanduser(value)
        origin[key] = expanded if os.path.isabs(expanded) else os.path.normpath(folder / expanded)
    return manifest


def load_manifest_file(path: str) -> list[dict[str, Any]]:
    """The manifests in a file (``-``: stdin, JSON first, then TOML), their relative paths (a WASM ``path``, a
    stdio ``cwd``) made absolute from the file's folder (for stdin, the working dir), as ``add`` does from its."""
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise usage(f"{path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise usage(f"{path}: not UTF-8 text") from None
    data: Any
    if path.endswith(".toml"):
        try:
            data = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as e:
            raise usage(f"{path}: not valid TOML: {e}") from None
    else:
        try:
            data = json.loads(raw)
        except ValueError as e:
            if path != "-":
                raise usage(f"{path}: not valid JSON: {e}") from None
            try:  # stdin has no extension: JSON first, then TOML
                data = tomllib.loads(raw)
            except tomllib.TOMLDecodeError:
                raise usage(f"stdin: neither valid JSON ({e}) nor valid TOML") from None
    lists = [data.get(k) for k in ("services", "profiles")] if isinstance(data, dict) and "kind" not in data else []
    if any(isinstance(v, list) for v in lists):
        data = [item for v in lists if isinstance(v, list) for item in v]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise usage(f"{path}: expected a manifest object, a list of them, or "
                    f"{{\"services\": [...], \"profiles\": [...]}}")
    folder = Path.cwd() if path == "-" else Path(os.path.abspath(path)).parent
    return [i if is_profile(i) else resolve_relative_paths(i, folder) for i in items]


def is_profile(manifest: dict[str, Any]) -> bool:
    """Whether a document of a manifest file is a profile (``kind: MCPProfile``), for ``/api/profiles``;
    anything else goes to ``/api/services`` (which says what is wrong with a kind it does not know)."""
    return manifest.get("kind") == PROFILE_KIND


# -- changing a registered service: add again, set, edit -------------------------------------------------------------

def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``("spec", "policy", "timeoutMs"), 5`` -> ``{"spec": {"policy": {"timeoutMs": 5}}}``."""
    out: Any = value
    for key in reversed(path):
        out = {key: out}
    result: dict[str, Any] = out
    return result


def combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two patches as one (``b`` wins where both name a field)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = combine(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def update_patch(manifest: dict[str, Any], *, name_given: bool, autostart_given: bool) -> dict[str, Any]:
    """The part of a manifest built by ``build_manifest`` that its flags gave: what ``add`` changes in a service
    already registered (its origin's identity, a derived name and the defaults stay as they are)."""
    meta = {k: v for k, v in manifest["metadata"].items() if k != "name" or name_given}
    spec = manifest["spec"]
    out: dict[str, Any] = {}
    if spec.get("policy"):
        out["policy"] = spec["policy"]
    for key in ("toolNamespace", "restartPolicy", "pinTools"):
        if key in spec:
            out[key] = spec[key]
    if autostart_given:
        out["autostart"] = spec["autostart"]
    origin = {k: v for k, v in spec["origin"].items()
              if k in ("transport", "authRef", "oauth", "env", "limits", "clientSessions")}
    if origin:
        out["origin"] = origin
    patch: dict[str, Any] = {}
    if meta:
        patch["metadata"] = meta
    if out:
        patch["spec"] = out
    return patch


# ``set --unset FLAG``: the field a flag sets, given back its default.
UNSET_FIELDS: dict[str, tuple[str, ...]] = {
    "namespace": ("spec", "toolNamespace"), "description": ("metadata", "description"),
    "transport": ("spec", "origin", "transport"), "auth-ref": ("spec", "origin", "authRef"),
    "auth": ("spec", "origin", "authRef"), "oauth": ("spec", "origin", "oauth"),
    "oauth-client-id": ("spec", "origin", "oauth", "clientId"),
    "oauth-client-secret-ref": ("spec", "origin", "oauth", "clientSecretRef"),
    "oauth-scopes": ("spec", "origin", "oauth", "scopes"), "oauth-grant": ("spec", "origin", "oauth", "grant"),
    "timeout-ms": ("spec", "policy", "timeoutMs"), "allow-tools": ("spec", "policy", "allowedTools"),
    "deny-tools": ("spec", "policy", "deniedTools"), "read-only": ("spec", "policy", "readOnly"),
    "max-payload-bytes": ("spec", "policy", "maxPayloadBytes"), "max-concurrency": ("spec", "policy", "maxConcurrency"),
    "max-queue": ("spec", "policy", "maxQueue"), "queue-timeout-ms": ("spec", "policy", "queueTimeoutMs"),
    "rate-limit": ("spec", "policy", "rateLimit"), "cache-ttl": ("spec", "policy", "cache"),
    "cache-tools": ("spec", "policy", "cache", "tools"), "restart": ("spec", "restartPolicy", "mode"),
    "max-restarts": ("spec", "restartPolicy", "maxRestarts"), "per-client": ("spec", "origin", "clientSessions"),
    "pin-tools": ("spec", "pinTools"),
    **{flag.removeprefix("--"): ("spec", "origin", "limits", key) for key, flag in STDIO_LIMIT_FLAGS.items()},
}


def unset_patch(items: list[str]) -> dict[str, Any]:
    """``--unset rate-limit --unset label:team --unset env:DEBUG`` as a merge patch of nulls."""
    patch: dict[str, Any] = {}
    for item in items:
        flag = item.removeprefix("--")
        kind, sep, key = flag.partition(":")
        path: tuple[str, ...]
        if sep and kind in ("label", "env") and key:
            path = ("metadata", "labels", key) if kind == "label" else ("spec", "origin", "env", key)
        elif flag in UNSET_FIELDS:
            path = UNSET_FIELDS[flag]
            if flag in ("auth", "auth-ref"):  # the oauth options go with the auth they belong to
                patch = combine(patch, nested(UNSET_FIELDS["oauth"], None))
        else:
            raise usage(f"--unset {item}: not a field; give a flag's name ({', '.join(sorted(UNSET_FIELDS))}), "
                        f"label:KEY or env:KEY")
        patch = combine(patch, nested(path, None))
    return patch
