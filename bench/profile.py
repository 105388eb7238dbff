"""Profile the hot path: ``tools/call`` through ``/mcp`` at concurrency 1.

Owns starting the echo upstream and a daemon (optionally under cProfile),
driving stateless-era and/or session-era ``tools/call`` at c=1, and reporting
(a) CPU milliseconds per call of the daemon and of the upstream (from
``/proc/<pid>/stat``: immune to the run-queue waits of a busy machine, unlike
wall-clock latency) and (b) where the daemon's time goes. Must not: change
the daemon's settings.

    python bench/profile.py [--calls 3000] [--profiler cprofile|pyspy|none] [--era stateless|session|both] [--services 100]

``pyspy`` attaches ``py-spy record`` to the running daemon (sampling; counts
runnable-but-waiting time as busy on a loaded machine); ``cprofile`` runs the
daemon under ``cProfile`` with a CPU-time timer (deterministic; slows every
Python call by a similar factor, so read the shares, not the absolute times).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from load import SESSION, STATELESS, Endpoint, run_load  # noqa: E402
from run import Daemon, Procs, free_port, wait_port  # noqa: E402


def cpu_s(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


class ProfiledDaemon(Daemon):
    def __init__(self, procs: Procs, state_dir: Path, prof_out: Path | None) -> None:
        super().__init__(procs, state_dir)
        self.prof_out = prof_out

    def start(self) -> dict[str, float]:
        if self.prof_out is None:
            return super().start()
        orig = self.procs.spawn

        def spawn(name, cmd, env=None):  # type: ignore[no-untyped-def]
            # CPU-time timer: wall time would charge the waits of a busy machine to whatever ran last.
            code = ("import cProfile, runpy, sys, time; p = cProfile.Profile(time.thread_time); sys.argv = "
                    f"['runtimed', *sys.argv[1:]]; p.enable()\ntry: runpy.run_module('runtimed', run_name='__main__')\n"
                    f"except SystemExit: pass\nfinally: p.disable(); p.dump_stats({str(self.prof_out)!r})")
            cmd = [cmd[0], "-c", code, *cmd[3:]]
            return orig(name, cmd, env)

        self.procs.spawn = spawn  # type: ignore[method-assign]
        try:
            return super().start()
        finally:
            self.procs.spawn = orig  # type: ignore[method-assign]


def pyspy_top(raw: Path, n: int) -> str:
    total = 0
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = [re.sub(r" \(.*?(site-packages|lib/python3\.\d+|work/main)/", " (", f) for f in stack.split(";")]
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    out = [f"{total} samples", "self:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(n)]
    out += ["inclusive:"] + [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(n * 2)]
    return "\n".join(out)


async def drive(daemon: Daemon, up_port: int, era: str, calls: int) -> list[str]:
    lines = []
    for label, url, name in (("direct", f"http://127.0.0.1:{up_port}/mcp", "echo"),
                             ("runtimed /mcp", daemon.url + "/mcp", "echo__echo")):
        ep = Endpoint(url, era)
        await ep.prepare()
        await run_load(ep, "tools/call", {"name": name, "arguments": {"text": "hi"}}, 1, 5, 200, label)
        d0, k0 = cpu_split(daemon.proc.pid)  # type: ignore[union-attr]
        u0 = cpu_s(drive.up_pid)  # type: ignore[attr-defined]
        st = await run_load(ep, "tools/call", {"name": name, "arguments": {"text": "hi"}}, 1, 120, calls, label)
        n = len(st.latencies_ms)
        (d1, k1), u1 = cpu_split(daemon.proc.pid), cpu_s(drive.up_pid)  # type: ignore[union-attr,attr-defined]
        s = st.summary()
        lines.append(f"{label:14} {era}: {n} calls, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms; CPU per call: "
                     f"daemon {1000 * (d1 - d0 + k1 - k0) / n:.3f} ms (user {1000 * (d1 - d0) / n:.3f}, system "
                     f"{1000 * (k1 - k0) / n:.3f}), upstream {1000 * (u1 - u0) / n:.3f} ms")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--profiler", choices=("cprofile", "pyspy", "none"), default="none")
    ap.add_argument("--era", choices=("stateless", "session", "both"), default="both")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--services", type=int, default=0, help="also register N services of 50 tools each")
    a = ap.parse_args()
    eras = {"stateless": [STATELESS], "session": [SESSION], "both": [STATELESS, SESSION]}[a.era]
    work = Path(tempfile.mkdtemp(prefix="runtimed-profile-"))
    procs = Procs(work)
    prof = work / "daemon.prof" if a.profiler == "cprofile" else None
    report: list[str] = []
    try:
        up_port = free_port()
        up = procs.spawn("upstream", [sys.executable, str(BENCH / "upstream_echo.py"), "--port", str(up_port),
                                      "--services", str(a.services)])
        wait_port(up_port, up)
        drive.up_pid = up.pid  # type: ignore[attr-defined]
        daemon = ProfiledDaemon(procs, work / "state", prof)
        daemon.start()
        daemon.register("echo", {"type": "remote_mcp", "url": f"http://127.0.0.1:{up_port}/mcp"})
        for i in range(a.services):
            daemon.register(f"svc{i:03d}", {"type": "remote_mcp", "url": f"http://127.0.0.1:{up_port}/s{i}/mcp"})
        daemon.wait_running(None)
        spy = None
        if a.profiler == "pyspy":
            exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([exe, "record", "-p", str(daemon.proc.pid), "-r", "250", "-f", "raw",  # type: ignore[union-attr]
                                    "-o", str(work / "pyspy.raw"), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        for era in eras:
            report += asyncio.run(drive(daemon, up_port, era, a.calls))
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
            report.append(pyspy_top(work / "pyspy.raw", a.top))
        daemon.stop()
    finally:
        procs.stop_all()
    if prof is not None and prof.exists():
        import io

        buf = io.StringIO()
        st = pstats.Stats(str(prof), stream=buf)
        st.strip_dirs().sort_stats("tottime").print_stats(a.top)
        st.sort_stats("cumulative").print_stats(a.top * 2)
        report.append(buf.getvalue())
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
