"""The search-mode index (``runtimed.profiles.search``) over a generated catalog of 5000 tools
(100 services x 50 tools, shaped like the connectors users put behind the gateway): realistic
queries rank the relevant tool first, a name match outranks a description match, and the
query language is free text (no FTS5 syntax reaches SQLite)."""

from __future__ import annotations

import itertools

import pytest

from runtimed.profiles.search import ToolDoc, ToolIndex, fts5_problem, match_expression, words

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


def generated_catalog() -> list[ToolDoc]:
    """5000 tools: 100 services (50 products, each twice: 'github' and 'github_enterprise'...) of 50
    tools, named <service>__<verb>_<object>, with plain descriptions and parameters."""
    docs: list[ToolDoc] = []
    services = PRODUCTS + [f"{p}_enterprise" for p in PRODUCTS]
    for n, svc in enumerate(services):
        pairs = list(itertools.product(VERBS, OBJECTS))
        start = (n * 37) % len(pairs)
        chosen = (pairs[start:] + pairs[:start])[:50]
        for verb, obj in chosen:
            product = svc.replace("_", " ")
            docs.append(ToolDoc(
                name=f"{svc}__{verb}_{obj}",
                description=f"{verb.capitalize()} a {obj} in {product}. Returns the {obj} as JSON.",
                service=svc,
                params=(f"{obj}_id", "workspace", "page_size") if verb != "create" else ("name", "body", "workspace"),
            ))
    assert len(docs) == 5000
    return docs


# Hand-written tools among the generated ones: what a query should find first.
TARGETS = [
    ToolDoc("github__create_issue", "Open a new issue in a GitHub repository with a title and a body.", "github",
            ("owner", "repo", "title", "body", "labels")),
    ToolDoc("slack__post_message", "Post a message to a Slack channel or a direct conversation.", "slack",
            ("channel", "text", "thread_ts")),
    ToolDoc("stripe__refund_charge", "Refund a charge, fully or partially, to the customer's card.", "stripe",
            ("charge", "amount", "reason")),
    ToolDoc("postgres__run_sql", "Run a read-only SQL query against the Postgres database and return the rows.",
            "postgres", ("sql", "params")),
    ToolDoc("kubernetes__list_pods", "List the pods of a namespace with their status and restarts.", "kubernetes",
            ("namespace", "label_selector")),
    ToolDoc("calendar__schedule_meeting", "Schedule a meeting: a calendar event with attendees and a video link.",
            "calendar", ("title", "start", "end", "attendees")),
    ToolDoc("weather__get_forecast", "Weather forecast for a city for the next days: temperature, rain, wind.",
            "weather", ("city", "days")),
    ToolDoc("images__resizeImage", "Scale a picture to a width and a height.", "images", ("image", "width", "height")),
    ToolDoc("translate__translate_text", "Translate text from one language into another.", "translate",
            ("text", "source_language", "target_language")),
    ToolDoc("pdf__extract_text", "Extract the text of every page of a PDF document.", "pdf", ("url", "pages")),
]

QUERIES = [
    ("create a github issue", "github__create_issue"),
    ("open an issue in my repo", "github__create_issue"),
    ("post a message to slack channel", "slack__post_message"),
    ("refund the customer's charge", "stripe__refund_charge"),
    ("run a SQL query on postgres", "postgres__run_sql"),
    ("which kubernetes pods are restarting", "kubernetes__list_pods"),
    ("schedule a meeting with attendees", "calendar__schedule_meeting"),
    ("what's the weather forecast in Paris", "weather__get_forecast"),
    ("resize image", "images__resizeImage"),
    ("translate this text to French", "translate__translate_text"),
    ("extract text from a PDF", "pdf__extract_text"),
]


@pytest.fixture(scope="module")
def index() -> ToolIndex:
    if fts5_problem():
        pytest.fail(fts5_problem() or "")
    docs = generated_catalog()
    # The targets sit among the generated tools, not first (rowid order breaks ties).
    for i, t in enumerate(TARGETS):
        docs.insert(400 * i + 123, t)
    return ToolIndex(docs)


@pytest.mark.parametrize(("query", "expected"), QUERIES)
def test_realistic_queries_rank_the_relevant_tool_first(index: ToolIndex, query: str, expected: str) -> None:
    hits = index.search(query, 10)
    assert hits and hits[0].name == expected, [h.name for h in hits[:5]]
    assert hits[0].service == expected.split("__")[0]
    assert hits[0].description.startswith(next(t.description for t in TARGETS if t.name == expected)[:20])


def test_generated_tools_are_found_by_service_verb_and_object(index: ToolIndex) -> None:
    assert len(index) == 5010
    for name in ("gitlab__delete_branch", "snowflake_enterprise__export_table", "sentry__list_alert"):
        svc, _, rest = name.partition("__")
        verb, _, obj = rest.partition("_")
        if not any(d.name == name for d in index.docs):
            continue  # not among that service's 50
        hits = index.search(f"{verb} {obj} {svc.replace('_', ' ')}", 5)
        assert hits[0].name == name, [h.name for h in hits]


def test_a_name_match_outranks_a_description_match() -> None:
    idx = ToolIndex([
        ToolDoc("notes__archive_note", "Moves a note out of sight; a later search will not find it. Can also delete "
                                       "a note's attachments, delete old revisions and delete tags.", "notes"),
        ToolDoc("notes__delete_note", "Removes a note for good.", "notes"),
    ])
    hits = idx.search("delete", 5)
    assert [h.name for h in hits] == ["notes__delete_note", "notes__archive_note"]


def test_parameter_names_are_searched() -> None:
    idx = ToolIndex([ToolDoc("geo__lookup", "Look something up.", "geo", ("postalCode", "country")),
                     ToolDoc("geo__route", "Directions between two places.", "geo", ("origin", "destination"))])
    assert [h.name for h in idx.search("postal code", 5)] == ["geo__lookup"]


def test_limit_and_nothing_found(index: ToolIndex) -> None:
    assert len(index.search("list", 50)) == 50
    assert len(index.search("list", 3)) == 3
    assert index.search("zzzqqq nothing like it", 10) == []
    assert index.search("   ", 10) == []


@pytest.mark.parametrize("query", ['"', "a AND", "NEAR(x y)", "col:thing", "*", "-x", "(((", "name: OR NOT"])
def test_free_text_never_reaches_sqlite_as_syntax(index: ToolIndex, query: str) -> None:
    index.search(query, 5)  # never raises: every word is quoted


def test_words() -> None:
    assert words("github__createIssue") == ["github", "create", "issue"]
    assert words("get-tiny-image") == ["get", "tiny", "image"]
    assert words("HTTPServer_stats") == ["http", "server", "stats"]
    assert match_expression("the a") == '"the" OR "a"'  # stop words only: kept rather than nothing
    assert match_expression("create an issue") == '"create"* OR "issue"*'
