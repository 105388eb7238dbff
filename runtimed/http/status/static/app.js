// The status page's script: token entry, HTML fragments from /api/ui, actions,
// and live updates from /api/events read as a fetch() stream (so the bearer
// token travels in a header, never in a URL). No polling: fragments are
// refetched only when an event says something changed.
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
                  unquarantine: "Unquarantine", remove: "Remove" };

  async function runAction(btn) {
    const name = btn.dataset.service;
    const verb = btn.dataset.action;
    if (verb === "remove" && !window.confirm("Remove service " + name + "? It is stopped and unregistered.")) return;
    btn.disabled = true;
    try {
      const path = "/api/services/" + encodeURIComponent(name) + (verb === "remove" ? "" : "/" + verb);
      const r = await request(verb === "remove" ? "DELETE" : "POST", path);
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
  setInterval(tickUptime, 1000); // a local clock only; nothing is fetched

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
    if (type === "call") {
      refresh("/api/ui/services");
      if (serviceName && svc === serviceName) {
        refresh(servicePart("calls"));
        refresh(servicePart("summary"));
      }
      if (!serviceName) refresh("/api/ui/insights");
      return;
    }
    refresh("/api/ui/overview");
    refresh("/api/ui/services");
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
    tickUptime();
    run();
  }

  window.addEventListener("pagehide", function () { if (streamAbort) streamAbort.abort(); });
  start();
})();
