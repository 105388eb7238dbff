"""The conformance upstream: an MCP server, written with the official SDK's ``MCPServer``,
offering exactly the tool, resource and prompt names the official conformance suite
(npm ``@modelcontextprotocol/conformance``) expects of a server under test.

Both protocol eras on one app at ``/mcp`` (the SDK routes by ``MCP-Protocol-Version``):
the session era scenarios of the 0.1.x suite and ``--requirements 2025-11-25``, and the
stateless era scenarios of ``--requirements 2026-07-28`` (input-required results,
``server/discover``, ``subscriptions/listen``, caching hints).

What each name must do is taken from the suite's scenario sources (see
docs/conformance.md); the texts below are the ones the scenarios compare against.

Run: ``python tests/upstreams/conformance_server.py --port P``. Test code only: never
imported by the product.
"""

import argparse
import asyncio
import base64
import json
from typing import Annotated, Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, Elicit, Resolve, Sample
from mcp.server.mcpserver.tools import Tool
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import (
    AudioContent,
    CallToolResult,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

# A 1x1 PNG and a tiny WAV (both valid files), base64.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_B64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

# requestedSchema shapes of the session-era elicitation scenarios.
ELICIT_USER_SCHEMA = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}
SEP1034_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
}
SEP1330_SCHEMA = {
    "type": "object",
    "properties": {
        "untitledSingle": {
            "type": "string",
            "description": "Untitled single-select",
            "enum": ["option1", "option2", "option3"],
        },
        "titledSingle": {
            "type": "string",
            "description": "Titled single-select",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "description": "Legacy titled enum",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "description": "Untitled multi-select",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "description": "Titled multi-select",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}
# inputSchema of `json_schema_2020_12_tool`: the suite checks these 2020-12 keywords survive.
JSON_SCHEMA_2020_12_INPUT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def _elicit_request(message: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "method": "elicitation/create",
        "params": {
            "mode": "form",
            "message": message,
            "requestedSchema": {"type": "object", "properties": properties, "required": required},
        },
    }


def _sampling_request(text: str, max_tokens: int) -> dict[str, Any]:
    return {
        "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": max_tokens},
    }


ROOTS_REQUEST = {"method": "roots/list", "params": {}}
STATELESS = "2026-07-28"


def _input_required(requests: dict[str, Any], state: str | None = None) -> InputRequiredResult:
    data: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        data["requestState"] = state
    return InputRequiredResult.model_validate(data)


def _responses(ctx: Context) -> dict[str, Any]:
    """The client's inputResponses as plain JSON (empty when none)."""
    got = ctx.input_responses or {}
    return {k: (v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, BaseModel) else v) for k, v in got.items()}


def _accepted(resp: Any) -> dict[str, Any] | None:
    """The content of an accepted elicitation response, else None."""
    if isinstance(resp, dict) and resp.get("action") == "accept" and isinstance(resp.get("content"), dict):
        return resp["content"]
    return None


def _text(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


class MemoryEventStore(EventStore):
    """Events kept in memory so a client can resume an SSE stream with Last-Event-ID."""

    def __init__(self) -> None:
        self._events: list[tuple[StreamId, EventId, Any]] = []
        self._next = 0

    async def store_event(self, stream_id: StreamId, message: Any) -> EventId:
        self._next += 1
        event_id = str(self._next)
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        stream = next((s for s, e, _ in self._events if e == last_event_id), None)
        if stream is None:
            return None
        after = int(last_event_id)
        for s, e, message in self._events:
            if s == stream and int(e) > after and message is not None:
                await send_callback(EventMessage(message, e))
        return stream


class Answer(BaseModel):
    answer: str


def build() -> MCPServer:
    hint = CacheHint(ttl_ms=60_000, scope="public")
    mcp = MCPServer(
        name="mcp-runtime-conformance",
        version="1.0.0",
        cache_hints={
            "tools/list": hint,
            "prompts/list": hint,
            "resources/list": hint,
            "resources/templates/list": hint,
            "resources/read": hint,
        },
    )
    subscriptions: set[str] = set()

    # ---- SEP-2243 (http-custom-header-server-validation): an argument mirrored into a header ----
    @mcp.tool(description="Echoes its region; `region` is mirrored into the Mcp-Param-Region header.")
    def test_custom_header(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
        return f"region: {region}"

    # ---- content tools (both eras) ----
    @mcp.tool(description="Returns a simple text content.")
    def test_simple_text() -> CallToolResult:
        return _text("This is a simple text response for testing.")

    @mcp.tool(description="Returns an image content (1x1 PNG).")
    def test_image_content() -> CallToolResult:
        return CallToolResult(content=[ImageContent(type="image", data=PNG_B64, mime_type="image/png")])

    @mcp.tool(description="Returns an audio content (tiny WAV).")
    def test_audio_content() -> CallToolResult:
        return CallToolResult(content=[AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")])

    @mcp.tool(description="Returns an embedded text resource.")
    def test_embedded_resource() -> CallToolResult:
        res = TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return CallToolResult(content=[EmbeddedResource(type="resource", resource=res)])

    @mcp.tool(description="Returns text, image and embedded resource contents.")
    def test_multiple_content_types() -> CallToolResult:
        res = TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
        )
        return CallToolResult(
            content=[
                TextContent(type="text", text="Multiple content types test:"),
                ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
                EmbeddedResource(type="resource", resource=res),
            ]
        )

    @mcp.tool(description="Always fails: an isError result.")
    def test_error_handling() -> str:
        raise RuntimeError("This tool intentionally returns an error for testing")

    @mcp.tool(description="Reports progress 0, 50 and 100 of 100.")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100, f"Completed step {step} of 100")
            if step < 100:
                await asyncio.sleep(0.05)
        return "Progress tool completed"

    @mcp.tool(description="Sends three info log messages while running.")
    async def test_tool_with_logging(ctx: Context) -> str:
        await ctx.info("Tool execution started")
        await asyncio.sleep(0.05)
        await ctx.info("Tool processing data")
        await asyncio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    def json_schema_tool() -> str:
        return "ok"

    # The SDK derives inputSchema from the signature; this tool must advertise the suite's schema verbatim.
    schema_tool = Tool.from_function(
        json_schema_tool, name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features"
    )
    mcp._tool_manager._tools[schema_tool.name] = schema_tool.model_copy(update={"parameters": JSON_SCHEMA_2020_12_INPUT})

    # ---- server-to-client requests, either era ----
    # Session era: a standalone request mid-call. Stateless era (e.g. when a gateway talks
    # 2026-07-28 to this server on behalf of a session-era client): an input-required result
    # under a fixed key, answered on the retry.
    @mcp.tool(description="Asks the client's model (sampling/createMessage).")
    async def test_sampling(prompt: str, ctx: Context) -> CallToolResult | InputRequiredResult:
        if ctx.protocol_version == STATELESS:
            got = _responses(ctx).get("sampling")
            if not isinstance(got, dict) or not isinstance(got.get("content"), dict):
                return _input_required({"sampling": _sampling_request(prompt, 100)})
            text = got["content"].get("text")
        else:
            result = await ctx.session.create_message(
                messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
                max_tokens=100,
                related_request_id=ctx.request_id,
            )
            text = getattr(result.content, "text", None)
        return _text(f"LLM response: {text or 'No response'}")

    async def _elicit(ctx: Context, message: str, schema: dict[str, Any]) -> tuple[str, dict[str, Any]] | InputRequiredResult:
        if ctx.protocol_version == STATELESS:
            got = _responses(ctx).get("elicitation")
            if not isinstance(got, dict) or got.get("action") not in ("accept", "decline", "cancel"):
                request = {"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}}
                return _input_required({"elicitation": request})
            return got["action"], got.get("content") or {}
        r = await ctx.session.elicit_form(message=message, requested_schema=schema, related_request_id=ctx.request_id)
        return r.action, r.content or {}

    @mcp.tool(description="Asks the user (elicitation/create).")
    async def test_elicitation(message: str, ctx: Context) -> CallToolResult | InputRequiredResult:
        r = await _elicit(ctx, message, ELICIT_USER_SCHEMA)
        if isinstance(r, InputRequiredResult):
            return r
        return _text(f"User response: action={r[0]}, content={json.dumps(r[1])}")

    @mcp.tool(description="Elicitation whose schema has defaults for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> CallToolResult | InputRequiredResult:
        r = await _elicit(ctx, "Please provide user information", SEP1034_SCHEMA)
        if isinstance(r, InputRequiredResult):
            return r
        return _text(f"Elicitation completed: action={r[0]}, content={json.dumps(r[1])}")

    @mcp.tool(description="Elicitation with the five enum schema variants (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> CallToolResult | InputRequiredResult:
        r = await _elicit(ctx, "Please select values using different enum schema types", SEP1330_SCHEMA)
        if isinstance(r, InputRequiredResult):
            return r
        return _text(f"Elicitation completed: action={r[0]}, content={json.dumps(r[1])}")

    @mcp.tool(description="Closes the SSE stream mid-call; the client resumes it (SEP-1699).")
    async def test_reconnection(ctx: Context) -> str:
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    # ---- stateless-era (2026-07-28) input-required tools ----
    @mcp.tool(description="Asks the user's name via an input-required result.")
    def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _accepted(_responses(ctx).get("user_name"))
        if got is None or not isinstance(got.get("name"), str):
            return _input_required(
                {"user_name": _elicit_request("What is your name?", {"name": {"type": "string"}}, ["name"])}
            )
        return _text(f"Hello, {got['name']}!")

    @mcp.tool(description="Asks the client's model via an input-required result.")
    def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _responses(ctx).get("capital_question")
        if not isinstance(got, dict) or "content" not in got:
            return _input_required({"capital_question": _sampling_request("What is the capital of France?", 100)})
        return _text(f"Sampling response: {got['content'].get('text', '')}")

    @mcp.tool(description="Asks the client's roots via an input-required result.")
    def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _responses(ctx).get("client_roots")
        if not isinstance(got, dict) or not isinstance(got.get("roots"), list):
            return _input_required({"client_roots": ROOTS_REQUEST})
        uris = [r.get("uri") for r in got["roots"] if isinstance(r, dict)]
        return _text(f"Client roots: {', '.join(map(str, uris))}")

    @mcp.tool(description="Round-trips a requestState through an input-required result.")
    def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _accepted(_responses(ctx).get("confirm"))
        if ctx.request_state == "awaiting-confirm" and got is not None:
            return _text(f"state-ok: confirmed={got.get('ok')}")
        return _input_required(
            {"confirm": _elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])}, "awaiting-confirm"
        )

    @mcp.tool(description="Asks for elicitation, sampling and roots in one input-required result.")
    def test_input_required_result_multiple_inputs(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _responses(ctx)
        keys = ("user_name", "greeting", "client_roots")
        if ctx.request_state == "awaiting-all" and all(k in got for k in keys):
            name = (_accepted(got["user_name"]) or {}).get("name")
            return _text(f"All inputs received (name={name})")
        return _input_required(
            {
                "user_name": _elicit_request("What is your name?", {"name": {"type": "string"}}, ["name"]),
                "greeting": _sampling_request("Generate a greeting", 50),
                "client_roots": ROOTS_REQUEST,
            },
            "awaiting-all",
        )

    @mcp.tool(description="Two rounds of input-required results with an evolving requestState.")
    def test_input_required_result_multi_round(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _responses(ctx)
        state = ctx.request_state or ""
        step2 = {"step2": _elicit_request("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])}
        if state.startswith("round2:"):
            color = (_accepted(got.get("step2")) or {}).get("color")
            if color is None:
                return _input_required(step2, state)
            return _text(f"Done: name={state[len('round2:'):]}, color={color}")
        if state == "round1":
            name = (_accepted(got.get("step1")) or {}).get("name", "")
            return _input_required(step2, f"round2:{name}")
        return _input_required(
            {"step1": _elicit_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])}, "round1"
        )

    @mcp.tool(description="Issues an integrity-protected requestState (the SDK seals it).")
    def test_input_required_result_tampered_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        if ctx.request_state == "awaiting-ok" and _accepted(_responses(ctx).get("confirm")) is not None:
            return _text("state verified")
        return _input_required(
            {"confirm": _elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])}, "awaiting-ok"
        )

    @mcp.tool(description="Only asks for inputs whose capability the client declared.")
    def test_input_required_result_capabilities(ctx: Context) -> CallToolResult | InputRequiredResult:
        got = _responses(ctx)
        caps = ctx.client_capabilities
        wanted: dict[str, Any] = {}
        if caps is not None and caps.sampling is not None and "model_answer" not in got:
            wanted["model_answer"] = _sampling_request("Say hello", 50)
        if caps is not None and caps.elicitation is not None and "user_answer" not in got:
            wanted["user_answer"] = _elicit_request("Say hello", {"text": {"type": "string"}}, ["text"])
        if wanted:
            return _input_required(wanted)
        return _text("capability-aware inputs complete")

    # ---- stateless-era diagnostics of the server-stateless scenario ----
    async def _need_sampling() -> Sample:
        return Sample([SamplingMessage(role="user", content=TextContent(type="text", text="ping"))], max_tokens=10)

    @mcp.tool(description="Needs the client's sampling capability (-32021 when undeclared).")
    async def test_missing_capability(reply: Annotated[Any, Resolve(_need_sampling)]) -> str:
        return f"sampled: {getattr(reply.content, 'text', '')}"

    async def _ask() -> Elicit[Answer]:
        return Elicit("Anything to add?", Answer)

    @mcp.tool(description="Elicits on the response stream (an input-required result in 2026-07-28).")
    async def test_streaming_elicitation(answer: Annotated[Answer, Resolve(_ask)]) -> str:
        return f"answer: {answer.answer}"

    @mcp.tool(description="Logs a message (only delivered when the request asked for a log level).")
    async def test_logging_tool(ctx: Context) -> str:
        await ctx.info("test_logging_tool ran")
        return "logged"

    def _extra_tool() -> str:
        return "added at runtime"

    @mcp.tool(description="Adds a tool and announces tools list_changed.")
    async def test_trigger_tool_change(ctx: Context) -> str:
        name = f"test_dynamic_tool_{len(await mcp.list_tools())}"
        mcp.add_tool(_extra_tool, name=name, description="added by test_trigger_tool_change")
        await _announce(ctx, "tools")
        return f"added {name}"

    @mcp.tool(description="Adds a prompt and announces prompts list_changed.")
    async def test_trigger_prompt_change(ctx: Context) -> str:
        name = f"test_dynamic_prompt_{len(await mcp.list_prompts())}"
        mcp.prompt(name=name, description="added by test_trigger_prompt_change")(lambda: "dynamic prompt")
        await _announce(ctx, "prompts")
        return f"added {name}"

    async def _announce(ctx: Context, what: str) -> None:
        if ctx.protocol_version == STATELESS:
            await (ctx.notify_tools_changed() if what == "tools" else ctx.notify_prompts_changed())
        elif what == "tools":
            await ctx.session.send_tool_list_changed()
        else:
            await ctx.session.send_prompt_list_changed()

    # ---- resources ----
    @mcp.resource("test://static-text", name="static-text", description="A static text resource", mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", name="static-binary", description="A static PNG image", mime_type="image/png")
    def static_binary() -> bytes:
        return base64.b64decode(PNG_B64)

    @mcp.resource(
        "test://template/{id}/data",
        name="template-data",
        description="A resource template with parameter substitution",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))

    @mcp.resource(
        "test://watched-resource", name="watched-resource", description="A resource to subscribe to", mime_type="text/plain"
    )
    def watched() -> str:
        return "Watched resource content"

    async def subscribe(ctx: Any, params: Any) -> EmptyResult:
        subscriptions.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: Any) -> EmptyResult:
        subscriptions.discard(str(params.uri))
        return EmptyResult()

    async def set_level(ctx: Any, params: Any) -> EmptyResult:
        return EmptyResult()

    import mcp_types

    low = mcp._lowlevel_server  # test fixture: the session-era handlers MCPServer has no decorator for
    low.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, unsubscribe)
    low.add_request_handler("logging/setLevel", mcp_types.SetLevelRequestParams, set_level)

    # ---- prompts ----
    @mcp.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[dict[str, Any]]:
        return [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]

    @mcp.prompt(description="A prompt with required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[dict[str, Any]]:
        text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
        return [{"role": "user", "content": {"type": "text", "text": text}}]

    @mcp.prompt(description="A prompt that includes an embedded resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:
        resource = {"uri": resourceUri, "mimeType": "text/plain", "text": "Embedded resource content for testing."}
        return [
            {"role": "user", "content": {"type": "resource", "resource": resource}},
            {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
        ]

    @mcp.prompt(description="A prompt that includes image content")
    def test_prompt_with_image() -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": {"type": "image", "data": PNG_B64, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
        ]

    @mcp.prompt(description="A prompt that needs user context first (input-required result)")
    def test_input_required_result_prompt(ctx: Context) -> Any:
        got = _accepted(_responses(ctx).get("user_context"))
        if got is None:
            return _input_required(
                {
                    "user_context": _elicit_request(
                        "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                    )
                }
            )
        return [{"role": "user", "content": {"type": "text", "text": f"Context: {got.get('context')}"}}]

    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        options = ["paris", "park", "party", "test", "testing"]
        values = [o for o in options if o.startswith(argument.value or "")]
        return Completion(values=values, total=len(values), has_more=False)

    return mcp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    mcp = build()
    app = mcp.streamable_http_app(host="127.0.0.1", event_store=MemoryEventStore(), retry_interval=100)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
