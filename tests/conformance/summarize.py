"""Summarize one run of the official MCP conformance suite against an expected-failures baseline.

Owns: reading the suite's ``-o`` output (one ``server-<scenario>-<timestamp>/checks.json``
per scenario), deciding which scenarios passed (no check with status FAILURE), and
comparing the scored ones with ``expected-failures.txt``. Must not run the suite or
start processes (``run.sh`` does that).

Exit status: 0 when every scored failure is in the baseline, 1 otherwise. The last line
printed is machine-readable: ``RESULT <run> passed=N failed=M expected=E unexpected=U``.

Usage: ``python summarize.py --run NAME --target gateway|direct --results DIR
(--scored FILE | --log FILE) [--baseline FILE] [--also-scored SCENARIO...]``
(``--also-scored``: scenarios the suite reports as informational that this project
holds itself to, e.g. the SEP-2243 header validation). ``--scored`` takes the output of
``conformance list --server --requirements R`` (its "Server scenarios" block is the scored
set); ``--log`` takes the suite's own stdout of a ``--suite`` run (every scenario it
announced with "=== Running scenario: X ===" is scored, and fewer announcements than its
"Running <suite> suite (N scenarios)" line is itself a failure).
"""

import argparse
import json
import re
import sys
from pathlib import Path

DIR_RE = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


def scored_from_listing(text: str) -> list[str]:
    """The scenario names under "Server scenarios" in a ``conformance list --server`` output."""
    names: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("Server scenarios"):
            inside = True
            continue
        if inside:
            m = re.match(r"^\s+- (\S+)", line)
            if m:
                names.append(m.group(1))
            elif line.strip():
                break
    return names


def scored_from_log(text: str) -> tuple[list[str], int | None]:
    """Scenarios a suite run announced, and how many it said it would run."""
    names = re.findall(r"^=== Running scenario: (\S+) ===$", text, flags=re.M)
    m = re.search(r"^Running \S+ suite \((\d+) scenarios\)", text, flags=re.M)
    return names, (int(m.group(1)) if m else None)


def load_results(results: Path) -> dict[str, list[dict]]:
    """Scenario name -> its checks (the newest output directory wins if a scenario ran twice)."""
    found: dict[str, tuple[str, list[dict]]] = {}
    for d in sorted(results.iterdir()) if results.is_dir() else []:
        m = DIR_RE.match(d.name)
        checks_file = d / "checks.json"
        if not m or not checks_file.is_file():
            continue
        try:
            checks = json.loads(checks_file.read_text())
        except ValueError:
            checks = [{"id": "unreadable", "status": "FAILURE", "errorMessage": f"unreadable {checks_file}"}]
        found[m.group("scenario")] = (d.name, checks if isinstance(checks, list) else [])
    return {k: v[1] for k, v in found.items()}


def load_baseline(path: Path | None, target: str, run: str) -> dict[str, str]:
    """Scenario -> reason, for lines ``<target|any> <run|any> <scenario> -- <reason>``."""
    out: dict[str, str] = {}
    if path is None or not path.is_file():
        return out
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head, _, reason = line.partition("--")
        parts = head.split()
        if len(parts) != 3:
            print(f"warning: ignoring malformed baseline line: {raw!r}", file=sys.stderr)
            continue
        t, r, scenario = parts
        if t in (target, "any") and r in (run, "any"):
            out[scenario] = reason.strip() or "(no reason given)"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="name of this run, e.g. 0.1-active, 2025-11-25, 2026-07-28")
    ap.add_argument("--target", required=True, choices=["gateway", "direct"])
    ap.add_argument("--results", required=True, type=Path)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--scored", type=Path)
    group.add_argument("--log", type=Path)
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--also-scored", nargs="*", default=[], metavar="SCENARIO",
                    help="scenarios the suite lists as informational that this project scores too")
    args = ap.parse_args()

    results = load_results(args.results)
    if args.scored is not None:
        scored = scored_from_listing(args.scored.read_text())
        if not scored:
            print(f"error: no server scenarios found in {args.scored}", file=sys.stderr)
            return 1
    else:
        scored, announced = scored_from_log(args.log.read_text(errors="replace"))
        if announced is None or len(scored) < announced:
            print(
                f"[{args.run}] the suite stopped early: {len(scored)} of {announced} scenarios started"
                f" (see {args.log})"
            )
            print(f"RESULT {args.run} passed=0 failed={announced or 1} expected=0 unexpected={announced or 1}")
            return 1
    scored = scored + [s for s in args.also_scored if s not in scored]
    baseline = load_baseline(args.baseline, args.target, args.run)

    passed: list[str] = []
    failed: list[tuple[str, str]] = []
    for scenario in scored:
        checks = results.get(scenario)
        if checks is None:
            failed.append((scenario, "no result (scenario did not run or crashed)"))
            continue
        bad = [c for c in checks if c.get("status") == "FAILURE"]
        if bad:
            first = bad[0]
            why = f"{first.get('id')}: {first.get('errorMessage') or first.get('description') or 'FAILURE'}"
            more = f" (+{len(bad) - 1} more failing checks)" if len(bad) > 1 else ""
            failed.append((scenario, why.replace("\n", " ")[:300] + more))
        else:
            passed.append(scenario)

    unexpected = [(s, why) for s, why in failed if s not in baseline]
    expected = [(s, why) for s, why in failed if s in baseline]
    stale = sorted(s for s in baseline if s in passed)
    unscored = sorted(set(results) - set(scored))

    print(f"[{args.run}] {len(passed)}/{len(scored)} scored scenarios passed")
    for s, why in expected:
        print(f"  ~ {s}: expected failure ({baseline[s]}); got {why}")
    for s, why in unexpected:
        print(f"  x {s}: {why}")
    for s in stale:
        print(f"  note: {s} is in the baseline but passed; remove it from expected-failures.txt")
    if unscored:
        notes = []
        for s in unscored:
            ok = not any(c.get("status") == "FAILURE" for c in results[s])
            notes.append(f"{s}={'pass' if ok else 'fail'}")
        print(f"  not scored (informational): {', '.join(notes)}")
    print(
        f"RESULT {args.run} passed={len(passed)} failed={len(failed)} "
        f"expected={len(expected)} unexpected={len(unexpected)}"
    )
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
