"""The profile manifest: a named, narrowed view of the gateway for one kind of agent.

Owns the pydantic models of ``apiVersion: runtimed/v1, kind: MCPProfile`` and their validation:
which services and tools a profile serves (names and globs, included and excluded), per-tool
overrides (public name, description, annotations, hidden), which services' prompts and resources
it serves, its mode (``full``: every selected tool; ``search``: three tools that search, describe
and call the selected ones) and ``pinTools``. A profile only narrows: policies stay the service's,
and an override changes what is listed, never what a policy sees.

Tool globs and override keys are the tools' public names on ``/mcp`` (``namespace__tool``). Must
not: touch the disk, the network or a service; storing profiles belongs to ``runtimed.state``,
serving them to ``runtimed.gateway``. ``schemas/`` is generated from these models.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtimed.config.manifest import NAME_PATTERN, describe_validation_error
from runtimed.errors import ManifestError

PROFILE_KIND: Final = "MCPProfile"
# A public tool name as clients see it (MCP tool names: letters, digits, '_', '-', '.', at most 128).
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
ANNOTATION_KEYS = frozenset({"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ProfileMetadata(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="The profile's name: its endpoint is /mcp/@NAME.")
    description: str | None = Field(default=None, max_length=2000)
    labels: dict[str, str] = Field(default_factory=dict)


class Selection(_Model):
    """Names or globs (``fnmatch``, case-sensitive) to include and to exclude; exclusion wins. An
    empty ``include`` means everything."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for g in v:
            if not g or len(g) > 200 or any(c.isspace() for c in g):
                raise ValueError(f"{g!r} is not a name or glob (no spaces, 1-200 characters)")
        return v

    def admits(self, name: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(name, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, g) for g in self.exclude)


class ToolOverride(_Model):
    """What a profile changes about one tool as it is listed (calls still reach the original)."""

    name: str | None = Field(default=None, pattern=TOOL_NAME_PATTERN,
                             description="The name clients see (calls to it reach the original tool).")
    description: str | None = Field(default=None, max_length=10_000,
                                    description="Replaces the upstream's description (e.g. to neutralise a "
                                                "poisoned one).")
    annotations: dict[str, Any] | None = Field(
        default=None, description="Merged over the upstream's annotations (title, readOnlyHint, destructiveHint, "
                                  "idempotentHint, openWorldHint). Policies still read the upstream's own.")
    hidden: bool = Field(default=False, description="Not listed and not callable through this profile.")

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        unknown = sorted(set(v) - ANNOTATION_KEYS)
        if unknown:
            raise ValueError(f"unknown annotation(s) {', '.join(unknown)}; known: {', '.join(sorted(ANNOTATION_KEYS))}")
        for key, value in v.items():
            if key == "title" and not isinstance(value, str):
                raise ValueError("annotation title must be a string")
            if key != "title" and not isinstance(value, bool):
                raise ValueError(f"annotation {key} must be true or false")
        return v


class ProfileSpec(_Model):
    services: Selection = Field(default_factory=Selection,
                                description="Services (names or globs) whose tools, prompts and resources may be "
                                            "served; empty include: every service.")
    tools: Selection = Field(default_factory=Selection,
                             description="Tools by public name (namespace__tool, globs) among those services.")
    overrides: dict[str, ToolOverride] = Field(default_factory=dict,
                                               description="Per-tool changes, keyed by the tool's public name on /mcp.")
    prompts: Selection | None = Field(default=None, description="Services whose prompts are served (default: the "
                                                                 "selected services).")
    resources: Selection | None = Field(default=None, description="Services whose resources are served (default: the "
                                                                   "selected services).")
    mode: Literal["full", "search"] = Field(
        default="full", description="full: every selected tool is listed; search: three tools (search_tools, "
                                    "describe_tool, call_tool) over them, for clients that cap tool counts.")
    pinTools: bool = Field(default=False, description="Withhold a tool whose definition changed until it is approved.")

    @field_validator("overrides")
    @classmethod
    def _override_keys(cls, v: dict[str, ToolOverride]) -> dict[str, ToolOverride]:
        for key in v:
            if not re.match(TOOL_NAME_PATTERN, key):
                raise ValueError(f"override key {key!r} is not a tool's public name (namespace__tool)")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> ProfileSpec:
        seen: dict[str, str] = {}
        for key, o in self.overrides.items():
            if o.name is not None:
                if o.name in seen:
                    raise ValueError(f"overrides {seen[o.name]!r} and {key!r} both rename to {o.name!r}")
                seen[o.name] = key
        return self


class ProfileManifest(_Model):
    apiVersion: Literal["runtimed/v1"] = "runtimed/v1"
    kind: Literal["MCPProfile"] = PROFILE_KIND
    metadata: ProfileMetadata
    spec: ProfileSpec = Field(default_factory=ProfileSpec)

    @property
    def name(self) -> str:
        return self.metadata.name

    def public_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def parse_profile(data: Any) -> ProfileManifest:
    if not isinstance(data, dict):
        raise ManifestError("a profile must be a JSON object")
    try:
        return ProfileManifest.model_validate(data)
    except ValidationError as e:
        raise ManifestError(describe_validation_error(e)) from None
