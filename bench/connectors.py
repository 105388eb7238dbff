"""A generated catalog of 100 services x 50 tools shaped like the connectors users put behind a gateway.

Owns ``connector_catalog``: services named after products (``github``, ``github_enterprise``, ...),
tools named ``<verb>_<object>`` with plain descriptions and described parameters, and, among them,
a few hand-written tools (``TARGETS``) that realistic queries (``QUERIES``) should find first. The
same shape as the generated catalog of ``tests/profiles/test_search_index.py``, kept here because
the benchmarks do not import the tests. ``bench/upstream_echo.py --connectors`` serves it (one path
per service); ``bench/profiles.py`` measures search mode over it. Must not: do I/O.
"""

from __future__ import annotations

import itertools
from typing import Any

PRODUCTS = [
    "github", "gitlab", "bitbucket", "jira", "linear", "asana", "trello", "slack", "discord", "teams", "gmail",
    "outlook", "calendar", "notion", "confluence", "postgres", "mysql", "redis", "mongodb", "s3", "gcs", "stripe",
    "shopify", "salesforce", "hubspot", "zendesk", "pagerduty", "datadog", "sentry", "grafana", "kubernetes",
    "docker", "terraform", "lambda", "ec2", "cloudflare", "vercel", "netlify", "figma", "dropbox", "drive", "box",
    "twilio", "sendgrid", "mailchimp", "intercom", "airtable", "sheets", "bigquery", "snowflake",
]
OBJECTS = ["record", "item", "entry", "report", "file", "folder", "user", "team", "project", "workspace",
           "webhook", "label", "comment", "attachment", "setting", "invoice", "customer", "order", "task",
           "note", "document", "message", "channel", "event", "alert", "metric", "dashboard", "deployment",
           "secret", "token", "bucket", "table", "query", "snapshot", "backup", "log", "job", "pipeline",
           "release", "tag", "branch", "member", "role", "policy", "template", "contact", "campaign",
           "ticket", "subscription", "payment"]
VERBS = ["create", "get", "list", "update", "delete", "archive", "search", "export"]


def _param(description: str, kind: str = "string") -> dict[str, Any]:
    return {"type": kind, "description": description}


# Hand-written tools (service, tool, description, parameters), each replacing one generated tool of its service.
TARGETS: list[tuple[str, str, str, dict[str, dict[str, Any]]]] = [
    ("github", "create_issue", "Open a new issue in a GitHub repository with a title and a body.",
     {"owner": _param("Repository owner."), "repo": _param("Repository name."), "title": _param("Issue title."),
      "body": _param("Issue body (Markdown)."), "labels": {"type": "array", "items": {"type": "string"},
                                                          "description": "Labels to add."}}),
    ("slack", "post_message", "Post a message to a Slack channel or a direct conversation.",
     {"channel": _param("Channel id or name."), "text": _param("Message text."),
      "thread_ts": _param("Reply in this thread.")}),
    ("stripe", "refund_charge", "Refund a charge, fully or partially, to the customer's card.",
     {"charge": _param("Charge id."), "amount": _param("Amount in cents (default: all).", "integer"),
      "reason": _param("duplicate, fraudulent or requested_by_customer.")}),
    ("postgres", "run_sql", "Run a read-only SQL query against the Postgres database and return the rows.",
     {"sql": _param("The SQL statement."), "params": {"type": "array", "description": "Bind parameters."}}),
    ("kubernetes", "list_pods", "List the pods of a namespace with their status and restarts.",
     {"namespace": _param("Namespace."), "label_selector": _param("Label selector, e.g. app=web.")}),
    ("calendar", "schedule_meeting", "Schedule a meeting: a calendar event with attendees and a video link.",
     {"title": _param("Meeting title."), "start": _param("Start (RFC 3339)."), "end": _param("End (RFC 3339)."),
      "attendees": {"type": "array", "items": {"type": "string"}, "description": "Attendee e-mail addresses."}}),
]

# (query, the tool it should rank first or None when the catalog has no one obvious answer)
QUERIES: list[tuple[str, str | None]] = [
    ("create a github issue", "github__create_issue"),
    ("open an issue in my repo", "github__create_issue"),
    ("post a message to slack channel", "slack__post_message"),
    ("refund the customer's charge", "stripe__refund_charge"),
    ("run a SQL query on postgres", "postgres__run_sql"),
    ("which kubernetes pods are restarting", "kubernetes__list_pods"),
    ("schedule a meeting with attendees", "calendar__schedule_meeting"),
    ("export the snowflake table to a file", None),
    ("delete an old branch", None),
    ("find the invoices of a customer", None),
]


def _generated(svc: str, verb: str, obj: str) -> dict[str, Any]:
    product = svc.replace("_", " ")
    if verb == "create":
        props = {"name": _param(f"Name of the new {obj}."), "body": _param(f"Content of the {obj}."),
                 "workspace": _param("Workspace id (default: the connection's).")}
    else:
        props = {f"{obj}_id": _param(f"Id of the {obj}."), "workspace": _param("Workspace id (default: the connection's)."),
                 "page_size": _param("Results per page (1-100).", "integer")}
    return {"name": f"{verb}_{obj}",
            "description": f"{verb.capitalize()} a {obj} in {product}. Returns the {obj} as JSON.",
            "inputSchema": {"type": "object", "properties": props, "required": [next(iter(props))]}}


def connector_catalog(services: int = 100, tools: int = 50) -> dict[str, list[dict[str, Any]]]:
    """Service name -> its tools (as an upstream lists them), deterministic."""
    names = (PRODUCTS + [f"{p}_enterprise" for p in PRODUCTS])[:services]
    pairs = list(itertools.product(VERBS, OBJECTS))
    out: dict[str, list[dict[str, Any]]] = {}
    for n, svc in enumerate(names):
        start = (n * 37) % len(pairs)
        out[svc] = [_generated(svc, verb, obj) for verb, obj in (pairs[start:] + pairs[:start])[:tools]]
    for svc, tool, description, props in TARGETS:
        if svc in out:
            out[svc][0] = {"name": tool, "description": description,
                           "inputSchema": {"type": "object", "properties": props, "required": [next(iter(props))]}}
    return out
