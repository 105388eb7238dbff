// The status page's script: token entry, HTML fragments from /api/ui, actions,
// charts of the last hour (uPlot, vendored under /static/vendor/uplot), and
// live updates from /api/events read as a fetch() stream (so the bearer token
// travels in a header, never in a URL). No polling: fragments and chart data
// are refetched only when an event says something changed; as minutes pass
// without calls, the charts slide by themselves (a minute without an event
// has no calls). Mutating requests send a JSON body (Content-Type:
// application/json), which no cross-site form can.
"use strict";

(function () {
  const TOKEN_KEY = "runtimed.token";
  const body = document.body;
  const authRequired = body.dataset.authRequired === "true";
  const serviceName = body.dataset.service || null;
  const live = document.getElementById("live");

  // ---------------------------------------------------------------- token
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h["Authorization"] = "Bearer " + t;
    return h;
  }

  function askForToken(message) {
    const panel = document.getElementById("token-panel");
    const err = document.getElementById("token-error");
    panel.hidden = false;
    if (message) { err.textContent = message; err.hidden = false; } else { err.hidden = true; }
    document.getElementById("token-input").focus();
    setLive("off", "token needed");
  }

  document.getElementById("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    const input = document.getElementById("token-input");
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    document.getElementById("token-panel").hidden = true;
    start();
  });

  class Unauthorized extends Error {}

  async function request(method, path, opts) {
    opts = opts || {};
    const init = { method: method, headers: headers(opts.headers), credentials: "same-origin", cache: "no-store" };
    // Every change is sent as JSON, body or not: the daemon refuses changes a cross-site page could send.
    if (method !== "GET") init.headers["Content-Type"] = "application/json";
    if (opts.json !== undefined) init.body = JSON.stringify(opts.json);
    const r = await fetch(path, init);
    if (r.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(token() ? "That token was refused." : "The token was refused; enter it again.");
      throw new Unauthorized("unauthorized");
    }
    return r;
  }

  // ------------------------------------------------------------- toasts
  function toast(text, kind) {
    const box = document.getElementById("toasts");
    const el = document.createElement("div");
    el.className = "toast " + (kind || "info");
    el.textContent = text;
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, kind === "error" ? 9000 : 4000);
  }

  // ---------------------------------------------------------- fragments
  const pending = new Set();
  let flushTimer = null;

  function refresh(path) {
    pending.add(path);
    if (flushTimer === null) flushTimer = setTimeout(flush, 120); // coalesce a burst of events
  }

  function refreshAll() {
    document.querySelectorAll("[data-fragment]").forEach(function (el) { refresh(el.dataset.fragment); });
    refreshCharts();
  }

  async function flush() {
    flushTimer = null;
    const paths = Array.from(pending);
    pending.clear();
    await Promise.all(paths.map(load));
  }

  async function load(path) {
    const targets = document.querySelectorAll('[data-fragment="' + CSS.escape(path) + '"]');
    if (!targets.length) return;
    let r;
    try {
      r = await request("GET", path);
    } catch (e) {
      return; // unauthorized (handled) or the daemon is away (the stream reconnects and refreshes)
    }
    const html = await r.text();
    targets.forEach(function (el) {
      const open = Array.from(el.querySelectorAll("details[open]")).map(detailsKey);
      el.innerHTML = html;
      el.querySelectorAll("details").forEach(function (d) { if (open.includes(detailsKey(d))) d.open = true; });
      el.dataset.loaded = "true";
    });
    tickUptime();
  }

  function detailsKey(d) {
    const s = d.querySelector("summary");
    return s ? s.textContent.trim() : "";
  }

  // ------------------------------------------------------------- actions
  const verbs = { start: "Start", stop: "Stop", restart: "Restart", introspect: "Introspect",
                  unquarantine: "Unquarantine", remove: "Remove", signin: "Sign in", signout: "Sign out",
                  approve: "Approve" };

  // An OAuth service's sign-in: the daemon answers the authorization server's URL (the browser goes
  // there, signs in, and comes back to the daemon's /oauth/callback, which links back here), or,
  // for the client-credentials grant, signs in at once. Sign out revokes and forgets the tokens.
  async function runSignIn(btn, name, verb) {
    const base = "/api/services/" + encodeURIComponent(name) + "/auth";
    if (verb === "signout" && !window.confirm("Sign the gateway out of " + name + "? It stops until someone signs in again.")) return;
    btn.disabled = true;
    try {
      const r = verb === "signin" ? await request("POST", base + "/login", { json: {} })
                                  : await request("DELETE", base, { json: {} });
      const data = await r.json().catch(function () { return {}; });
      if (!r.ok) {
        toast(verbs[verb] + " " + name + ": " + (data.error || r.statusText), "error");
      } else if (verb === "signin" && data.url) {
        window.location.assign(data.url);
        return;
      } else if (verb === "signin") {
        toast(name + ": signed in" + (data.issuer ? " at " + data.issuer : ""), "ok");
      } else {
        toast(name + ": signed out" + (data.revoked ? " (the server revoked the tokens)" : ""), "ok");
      }
    } catch (e) {
      if (!(e instanceof Unauthorized)) toast(verbs[verb] + " " + name + ": the daemon did not answer", "error");
    }
    btn.disabled = false;
  }

  async function runAction(btn) {
    const name = btn.dataset.service;
    const verb = btn.dataset.action;
    if (verb === "signin" || verb === "signout") return runSignIn(btn, name, verb);
    if (verb === "remove" && !window.confirm("Remove service " + name + "? It is stopped and unregistered.")) return;
    btn.disabled = true;
    try {
      // approve: a tool's pending change (data-tool), or every pending one, becomes the pinned definition.
      const path = "/api/services/" + encodeURIComponent(name)
        + (verb === "remove" ? "" : verb === "approve" ? "/tools/approve" : "/" + verb);
      const body = verb === "approve" ? { tools: btn.dataset.tool ? [btn.dataset.tool] : null } : {};
      const r = await request(verb === "remove" ? "DELETE" : "POST", path, { json: body });
      const data = await r.json().catch(function () { return {}; });
      if (!r.ok) {
        toast(verbs[verb] + " " + name + ": " + (data.error || r.statusText), "error");
      } else {
        toast(verbs[verb] + " " + name + ": done", "ok");
        if (verb === "remove" && serviceName) { window.location.assign("/status"); }
      }
    } catch (e) {
      if (!(e instanceof Unauthorized)) toast(verbs[verb] + " " + name + ": the daemon did not answer", "error");
    } finally {
      btn.disabled = false;
    }
  }

  async function runBootstrap(btn) {
    const client = btn.dataset.client;
    const op = btn.dataset.bootstrap;
    const label = client === "codex" ? "Codex" : "Claude Code";
    const question = op === "remove"
      ? "Remove the gateway entry from " + label + "'s configuration?"
      : "Write the gateway entry into " + label + "'s configuration? (a backup of the file is kept)";
    if (!window.confirm(question)) return;
    btn.disabled = true;
    try {
      const r = await request("POST", op === "remove" ? "/api/bootstrap/remove" : "/api/bootstrap",
                              { json: { clients: [client] } });
      const data = await r.json().catch(function () { return {}; });
      if (!r.ok) toast(label + ": " + (data.error || r.statusText), "error");
      else toast(label + ": " + (op === "remove" ? "entry removed" : "entry written") + "; restart the client", "ok");
    } catch (e) {
      if (!(e instanceof Unauthorized)) toast(label + ": the daemon did not answer", "error");
    } finally {
      btn.disabled = false;
      refresh("/api/ui/clients");
    }
  }

  async function copy(btn) {
    const text = btn.dataset.copy;
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      const ta = document.createElement("textarea");
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      try { document.execCommand("copy"); } catch (e2) { /* nothing more to try */ }
      ta.remove();
    }
    const old = btn.textContent;
    btn.textContent = "Copied";
    setTimeout(function () { btn.textContent = old; }, 1200);
  }

  document.addEventListener("click", function (ev) {
    const el = ev.target.closest("button");
    if (!el) return;
    if (el.dataset.action) runAction(el);
    else if (el.dataset.bootstrap) runBootstrap(el);
    else if (el.dataset.copy) copy(el);
  });

  // -------------------------------------------------------------- charts
  // Each [data-series] holds figures [data-chart=KIND]; its URL answers columns per minute
  // (t, calls, errors, errorRate, p50Ms, p95Ms). The uPlot instance is kept on the figure (fig._uplot).
  const CHART_HEIGHT = 150;
  let chartTimer = null;

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // A legend value: the hovered minute's, else the latest minute with a value.
  function legendValue(format) {
    return function (u, v, si, idx) {
      if (idx == null) {
        const col = u.data[si];
        for (let i = col.length - 1; i >= 0; i--) { if (col[i] != null) { v = col[i]; break; } }
      }
      return v == null ? "—" : format(v);
    };
  }

  function chartSpec(kind, s) {
    const accent = cssVar("--accent", "#2f6fde"), bad = cssVar("--bad", "#c02d2d"), warn = cssVar("--warn", "#a86400");
    const fromZero = function (u, min, max) { return [0, Math.max(1, (max || 0) * 1.15)]; };
    // Sparse series (a rate or a latency exists only in minutes with calls): their points are drawn too.
    const dots = { show: true, size: 5 };
    if (kind === "errors") {
      return { data: [s.t, s.errorRate.map(function (v) { return v == null ? null : Math.round(v * 1000) / 10; })],
               series: [{ label: "error rate", stroke: bad, width: 1.5, points: dots,
                          value: legendValue(function (v) { return v + "%"; }) }],
               y: { range: function (u, min, max) { return [0, Math.max(5, Math.min(100, (max || 0) * 1.15))]; },
                    unit: "%" } };
    }
    if (kind === "latency") {
      const ms = legendValue(function (v) { return (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms"; });
      return { data: [s.t, s.p50Ms, s.p95Ms],
               series: [{ label: "p50", stroke: accent, width: 1.5, points: dots, value: ms },
                        { label: "p95", stroke: warn, width: 1.5, points: dots, value: ms }],
               y: { range: fromZero, unit: "ms" } };
    }
    // calls (a service) and gateway (every service): calls and errors per minute (zero in a quiet minute)
    const count = legendValue(String);
    return { data: [s.t, s.calls, s.errors],
             series: [{ label: "calls", stroke: accent, fill: accent + "22", width: 1.5, value: count },
                      { label: "errors", stroke: bad, width: 1.5, value: count }],
             y: { range: fromZero, unit: "/min", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] } };
  }

  function hhmm(t) {
    return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function chartOptions(kind, spec, width) {
    const muted = cssVar("--muted", "#6b7280"), line = cssVar("--line", "#e3e6eb");
    const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    return {
      width: width, height: CHART_HEIGHT,
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: spec.y.range } },
      series: [{ label: "minute", value: function (u, v) { return v == null ? "latest" : hhmm(v); } }]
        .concat(spec.series.map(function (x) { return Object.assign({ spanGaps: false }, x); })),
      axes: [Object.assign({ values: function (u, ticks) { return ticks.map(hhmm); } }, axis),
             Object.assign({ size: 44, incrs: spec.y.incrs, values: function (u, ticks) {
               return ticks.map(function (v) { return v + (spec.y.unit === "%" ? "%" : ""); });
             } }, axis)],
    };
  }

  function drawChart(fig, series) {
    if (typeof uPlot === "undefined") return;
    const kind = fig.dataset.chart;
    const spec = chartSpec(kind, series);
    const plot = fig.querySelector(".plot");
    const width = Math.max(120, Math.floor(plot.clientWidth));
    if (fig._uplot) {
      fig._uplot.setData(spec.data);
      if (Math.abs(fig._uplot.width - width) > 1) fig._uplot.setSize({ width: width, height: CHART_HEIGHT });
    } else {
      plot.textContent = "";
      fig._uplot = new uPlot(chartOptions(kind, spec, width), spec.data, plot);
    }
    fig.dataset.drawn = "true";
  }

  async function loadSeries(box) {
    let r;
    try {
      r = await request("GET", box.dataset.series);
    } catch (e) {
      return; // unauthorized (handled) or the daemon is away (the stream reconnects and refreshes)
    }
    if (!r.ok) return;
    box._series = await r.json();
    box.querySelectorAll("[data-chart]").forEach(function (fig) { drawChart(fig, box._series); });
  }

  function refreshCharts() {
    if (chartTimer !== null) return;
    chartTimer = setTimeout(function () { // coalesce a burst of calls into one fetch per chart group
      chartTimer = null;
      document.querySelectorAll("[data-series]").forEach(loadSeries);
    }, 500);
  }

  // A new minute without a call event: the charts slide left by one empty minute each.
  function slideCharts() {
    const minute = Math.floor(Date.now() / 60000) * 60;
    document.querySelectorAll("[data-series]").forEach(function (box) {
      const s = box._series;
      if (!s || !s.t.length || s.t[s.t.length - 1] >= minute) return;
      while (s.t[s.t.length - 1] < minute) {
        s.t.push(s.t[s.t.length - 1] + 60);
        s.calls.push(0); s.errors.push(0); s.errorRate.push(null); s.p50Ms.push(null); s.p95Ms.push(null);
        ["t", "calls", "errors", "errorRate", "p50Ms", "p95Ms"].forEach(function (k) { s[k].shift(); });
      }
      box.querySelectorAll("[data-chart]").forEach(function (fig) { drawChart(fig, s); });
    });
  }

  let resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      document.querySelectorAll("[data-series]").forEach(function (box) {
        if (box._series) box.querySelectorAll("[data-chart]").forEach(function (fig) { drawChart(fig, box._series); });
      });
    }, 150);
  });

  // ------------------------------------------------------- add a service
  // The form builds the manifest `runtimectl add` would (a URL, a command split as a shell would but run
  // without one, or a file) and posts it to /api/services: the daemon's checks and messages are the CLI's.
  // The page itself checks only what never reaches the daemon (nothing entered, an unclosed quote) and that
  // the name is free (POST /api/services would update a service of that name).
  const KINDS = {
    url: { label: "URL", placeholder: "https://mcp.example.com/mcp", missing: "enter the server's URL",
           hint: "The http(s) URL of a remote MCP server (Streamable HTTP)." },
    command: { label: "Command", placeholder: "npx -y @modelcontextprotocol/server-filesystem /srv/docs",
               missing: "enter the command that runs the server",
               hint: "Run by the daemon as a child process, without a shell: quotes group words, nothing else is " +
                     "expanded. A program by name is looked up on the daemon's PATH." },
    wasm: { label: "File", placeholder: "/home/me/tools/upper.wasm", missing: "enter the path of a .wasm or .wat file",
            hint: "The absolute path of a .wasm or .wat file on the daemon's machine." },
  };

  function splitCommand(text) {
    const words = [];
    let word = null, quote = null;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quote === "'") { if (c === "'") quote = null; else word += c; continue; }
      if (quote === '"') {
        if (c === '"') quote = null;
        else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) word += text[++i];
        else word += c;
        continue;
      }
      if (/\s/.test(c)) { if (word !== null) { words.push(word); word = null; } continue; }
      if (word === null) word = "";
      if (c === "'" || c === '"') quote = c;
      else if (c === "\\" && i + 1 < text.length) word += text[++i];
      else word += c;
    }
    if (quote) throw new Error("the command has an unclosed " + (quote === "'" ? "single" : "double") + " quote");
    if (word !== null) words.push(word);
    return words;
  }

  function normaliseName(base) {
    let n = base.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^[-_]+|[-_]+$/g, "");
    if (!n) return "";
    if (!/^[a-z0-9]/.test(n)) n = "s" + n;
    return n.slice(0, 32).replace(/[-_]+$/, "");
  }

  function stem(path) {
    const last = path.replace(/\/+$/, "").split("/").pop() || "";
    return last.replace(/\.[^.]*$/, "");
  }

  const GENERIC = new Set(["index", "main", "server", "cli", "app", "run", "start", "mod", "bin", "build", "dist",
                           "src", "stdio", "mcp", "lib", "out"]);
  const RUNNERS = new Set(["npx", "pnpx", "bunx", "uvx", "pipx", "node", "nodejs", "deno", "bun", "tsx", "ts-node",
                           "python", "python3", "py", "pypy", "uv", "sh", "bash", "docker", "podman", "run", "exec"]);

  // A suggestion only (the field stays editable): named as `runtimectl add` names it in the common cases.
  function suggestName(kind, target) {
    target = target.trim();
    if (!target) return "";
    if (kind === "url") {
      let u;
      try { u = new URL(target); } catch (e) { return ""; }
      const host = u.hostname.replace(/^\[|\]$/g, "");
      if (["127.0.0.1", "localhost", "::1"].includes(host)) return "local-" + (u.port || (u.protocol === "https:" ? 443 : 80));
      const parts = host.split(".");
      const skip = ["127", "localhost", "www", "api", "mcp"];
      return normaliseName(skip.includes(parts[0]) && parts.length > 1 ? parts[1] : parts[0]);
    }
    if (kind === "wasm") return normaliseName(stem(target));
    let words;
    try { words = splitCommand(target); } catch (e) { return ""; }
    let i = 0;
    while (i < words.length && (RUNNERS.has(stem(words[i]).toLowerCase()) || words[i].startsWith("-"))) {
      if (words[i] === "-m" && i + 1 < words.length) return normaliseName(words[i + 1].split(".")[0]);
      i++;
    }
    const word = words[i] || words[0] || "";
    const pkg = word.match(/^(@[^/]+\/)?([^@/]+)(@.*)?$/);
    if (pkg && !word.includes("/" + "/") && !word.startsWith("/") && !word.startsWith(".")) {
      const base = pkg[2];
      if (GENERIC.has(base) && pkg[1]) return normaliseName(pkg[1].slice(1, -1));
      return normaliseName(base.replace(/\.(js|mjs|cjs|ts|py)$/, ""));
    }
    const parts = word.split("/").filter(Boolean);
    let base = stem(word);
    for (let j = parts.length - 2; GENERIC.has(base.toLowerCase()) && j >= 0; j--) base = parts[j];
    return normaliseName(base);
  }

  function addForm() { return document.getElementById("add-form"); }

  function addKind() {
    const checked = addForm().querySelector('input[name="kind"]:checked');
    return checked ? checked.value : "url";
  }

  let nameTouched = false;

  function onAddInput(ev) {
    const form = addForm();
    const k = KINDS[addKind()];
    if (ev && ev.target && ev.target.name === "kind") {
      document.getElementById("add-target-label").textContent = k.label;
      document.getElementById("add-target").placeholder = k.placeholder;
      document.getElementById("add-hint").textContent = k.hint;
    }
    if (ev && ev.target && ev.target.id === "add-name") nameTouched = ev.target.value !== "";
    if (!nameTouched) form.querySelector("#add-name").value = suggestName(addKind(), form.querySelector("#add-target").value);
  }

  function addError(text) {
    const el = document.getElementById("add-error");
    el.textContent = text;
    el.hidden = !text;
  }

  async function submitAdd(ev) {
    ev.preventDefault();
    const form = addForm();
    const kind = addKind();
    const target = form.querySelector("#add-target").value.trim();
    const btn = form.querySelector('button[type="submit"]');
    addError("");
    if (!target) { addError(KINDS[kind].missing); return; }
    let origin;
    if (kind === "url") origin = { type: "remote_mcp", url: target };
    else if (kind === "wasm") origin = { type: "local_wasm", path: target };
    else {
      let words;
      try { words = splitCommand(target); } catch (e) { addError(e.message); return; }
      if (!words.length) { addError(KINDS.command.missing); return; }
      origin = { type: "stdio", command: words[0] };
      if (words.length > 1) origin.args = words.slice(1);
    }
    const name = form.querySelector("#add-name").value.trim() || suggestName(kind, target);
    const manifest = { apiVersion: "runtimed/v1", kind: "MCPService", metadata: { name: name }, spec: { origin: origin } };
    const start = form.querySelector("#add-start").checked;
    btn.disabled = true;
    try {
      const list = await request("GET", "/api/services");
      if (list.ok) {
        const taken = ((await list.json()).services || []).some(function (s) { return s.name === name || s.id === name; });
        if (taken) {
          addError("a service named " + name + " already exists: choose another name (or remove that one first)");
          return;
        }
      }
      const r = await request("POST", "/api/services" + (start ? "" : "?start=false"), { json: manifest });
      const data = await r.json().catch(function () { return {}; });
      if (!r.ok) { addError(data.error || ("the daemon answered " + r.status)); return; }
      toast("Added " + name + (start ? "" : " (not started)"), "ok");
      form.querySelector("#add-target").value = "";
      form.querySelector("#add-name").value = "";
      nameTouched = false;
      refresh("/api/ui/services");
    } catch (e) {
      if (!(e instanceof Unauthorized)) addError("the daemon did not answer");
    } finally {
      btn.disabled = false;
    }
  }

  if (addForm()) {
    addForm().addEventListener("input", onAddInput);
    addForm().addEventListener("change", onAddInput);
    addForm().addEventListener("submit", submitAdd);
  }

  // -------------------------------------------------------------- uptime
  function tickUptime() {
    document.querySelectorAll("[data-uptime-since]").forEach(function (el) {
      let s = Math.max(0, Math.floor(Date.now() / 1000 - parseFloat(el.dataset.uptimeSince)));
      const d = Math.floor(s / 86400); s -= d * 86400;
      const h = Math.floor(s / 3600); s -= h * 3600;
      const m = Math.floor(s / 60); s -= m * 60;
      el.textContent = (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + s + "s";
    });
  }
  setInterval(function () { tickUptime(); slideCharts(); }, 1000); // a local clock only; nothing is fetched

  // --------------------------------------------------------- live stream
  let lastId = 0;
  let daemonPid = null;
  let streamAbort = null;
  let backoff = 500;

  function setLive(state, text) {
    live.className = "live " + state;
    live.textContent = text;
  }

  function onEvent(type, data) {
    const svc = data && data.service;
    if (type === "hello") return;
    if (type === "capability.requested") { refresh("/api/ui/insights"); return; }
    if (type === "clients") { refresh("/api/ui/overview"); refresh("/api/ui/clients"); return; }
    if (type === "profiles") { refresh("/api/ui/profiles"); return; }
    if (type === "call") {
      refresh("/api/ui/services");
      if (!serviceName || svc === serviceName) refreshCharts();
      if (serviceName && svc === serviceName) {
        refresh(servicePart("calls"));
        refresh(servicePart("summary"));
      }
      if (!serviceName) refresh("/api/ui/insights");
      return;
    }
    refresh("/api/ui/overview");
    refresh("/api/ui/services");
    refresh("/api/ui/profiles"); // the profiles' tool counts follow the services
    if (serviceName && (svc === serviceName || !svc)) {
      ["summary", "interface", "logs", "events"].forEach(function (p) { refresh(servicePart(p)); });
    }
  }

  function servicePart(part) {
    return "/api/ui/services/" + encodeURIComponent(serviceName) + "/" + part;
  }

  async function checkDaemon() {
    const r = await request("GET", "/api/status");
    if (!r.ok) throw new Error("status " + r.status);
    const s = await r.json();
    if (daemonPid !== null && s.pid !== daemonPid) lastId = 0; // a new daemon: its event ids start again
    daemonPid = s.pid;
  }

  async function stream() {
    streamAbort = new AbortController();
    const h = headers({ "Accept": "text/event-stream" });
    if (lastId) h["Last-Event-ID"] = String(lastId);
    const r = await fetch("/api/events", { headers: h, signal: streamAbort.signal, cache: "no-store" });
    if (r.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken("The token was refused; enter it again.");
      throw new Unauthorized("unauthorized");
    }
    if (!r.ok || !r.body) throw new Error("event stream answered " + r.status);
    setLive("on", "live");
    backoff = 500;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        dispatch(block);
      }
    }
  }

  function dispatch(block) {
    let type = "message", data = "", id = null;
    block.split("\n").forEach(function (line) {
      if (!line || line.startsWith(":")) return;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    });
    if (id !== null && /^\d+$/.test(id)) lastId = Math.max(lastId, parseInt(id, 10));
    let parsed = null;
    try { parsed = data ? JSON.parse(data) : null; } catch (e) { parsed = null; }
    onEvent(type, parsed);
  }

  let running = false;

  async function run() {
    if (running) return;
    running = true;
    let first = true;
    while (true) {
      try {
        await checkDaemon();
        if (!first) refreshAll(); // anything may have changed while we were away
        first = false;
        await stream();
        setLive("off", "reconnecting…");
      } catch (e) {
        if (e instanceof Unauthorized) { running = false; return; }
        setLive("off", "daemon unreachable, retrying…");
      }
      await new Promise(function (res) { setTimeout(res, backoff); });
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  function start() {
    if (authRequired && !token()) { askForToken(); return; }
    const needLoad = Array.from(document.querySelectorAll("[data-fragment]")).some(function (el) {
      return !el.innerHTML.trim();
    });
    if (needLoad) refreshAll();
    else refreshCharts();
    tickUptime();
    run();
  }

  window.addEventListener("pagehide", function () { if (streamAbort) streamAbort.abort(); });
  start();
})();
