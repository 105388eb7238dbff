"""The managed block in a project's ``AGENTS.md`` that tells coding agents
the gateway exists, where it is, and which ``runtime__*`` tools it offers (or,
for a profile's endpoint, which profile they are given).

Owns the block's text and markers and replacing or removing exactly that
block; text outside the markers is never changed. Must not touch the disk.
"""

from __future__ import annotations

from pathlib import Path

from runtimed.bootstrap.entries import endpoint_profile
from runtimed.bootstrap.model import ConfigParseError

BEGIN = "<!-- runtimed:begin -->"
END = "<!-- runtimed:end -->"

TOOLS = (
    ("runtime__status_summary", "one-line health of the gateway and every service"),
    ("runtime__list_services", "the registered services, their state and tool counts"),
    ("runtime__get_service", "one service's manifest, health, policy and recent errors"),
    ("runtime__get_logs", "recent log lines of a service"),
    ("runtime__refresh_interface", "re-read a service's tools/resources/prompts after it changed"),
)


def render_block(endpoint: str, name: str) -> str:
    """The managed block, markers included, ending with a newline (for a profile's endpoint,
    ``/mcp/@NAME``, it names the profile instead of listing the gateway's own tools)."""
    profile = endpoint_profile(endpoint)
    if profile is not None:
        return (
            f"{BEGIN}\n"
            "## MCP Runtime gateway\n"
            "\n"
            f"This machine runs an MCP Runtime gateway. Its profile `{profile}` is at `{endpoint}`, "
            f"configured in your MCP client as the server `{name}`: it serves the tools chosen for this "
            "kind of agent (some may be renamed or described for you).\n"
            "\n"
            "If a tool fails, `runtimectl status`, `runtimectl doctor` and "
            f"`runtimectl profile show {profile}` show how the gateway and this profile are.\n"
            "\n"
            "_This block is managed by `runtimectl bootstrap --update-agents-md`; edits inside it are replaced._\n"
            f"{END}\n"
        )
    tools = "\n".join(f"- `{tool}`: {what}" for tool, what in TOOLS)
    return (
        f"{BEGIN}\n"
        "## MCP Runtime gateway\n"
        "\n"
        f"This machine runs an MCP Runtime gateway at `{endpoint}`. It is configured in your MCP "
        f"client as the server `{name}`; the tools of every service behind it appear there as "
        "`<service>__<tool>`.\n"
        "\n"
        "Gateway tools:\n"
        f"{tools}\n"
        "\n"
        "If a tool fails, call `runtime__status_summary` first. Manage services with `runtimectl` "
        "(`runtimectl status`, `runtimectl doctor`).\n"
        "\n"
        "_This block is managed by `runtimectl bootstrap --update-agents-md`; edits inside it are replaced._\n"
        f"{END}\n"
    )


def _find(text: str, path: Path) -> tuple[int, int] | None:
    """(start, end) offsets of the block including its END line, or None."""
    start = text.find(BEGIN)
    end_at = text.find(END)
    if start < 0 and end_at < 0:
        return None
    if end_at < 0:
        line = text[:start].count("\n") + 1
        raise ConfigParseError(path, f"`{BEGIN}` without a matching `{END}`", line, None)
    if start < 0 or end_at < start:
        line = text[:end_at].count("\n") + 1
        raise ConfigParseError(path, f"`{END}` without a preceding `{BEGIN}`", line, None)
    second = text.find(BEGIN, start + 1)
    if second >= 0:
        line = text[:second].count("\n") + 1
        raise ConfigParseError(path, f"more than one `{BEGIN}` block", line, None)
    end = end_at + len(END)
    if text.startswith("\n", end):
        end += 1
    return start, end


def decode(path: Path, raw: bytes | None) -> str:
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigParseError(path, f"not valid UTF-8 (byte {e.start})", line, None) from None


def with_block(text: str, block: str, path: Path) -> str:
    """``text`` with the managed block replaced, or appended after a blank line."""
    found = _find(text, path)
    if found is not None:
        start, end = found
        return text[:start] + block + text[end:]
    if not text:
        return block
    if not text.endswith("\n"):
        text += "\n"
    if not text.endswith("\n\n"):
        text += "\n"
    return text + block


def without_block(text: str, path: Path) -> str | None:
    """``text`` minus the managed block (and the blank line bootstrap put
    before it), or None when there is no block."""
    found = _find(text, path)
    if found is None:
        return None
    start, end = found
    before, after = text[:start], text[end:]
    if not after and before.endswith("\n\n"):
        before = before[:-1]
    return before + after
