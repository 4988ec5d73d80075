// The mesh-sync dashboard: polls the node's JSON API once a second and redraws.
// Every text from the mesh (keys, values, node ids) goes in with textContent, never as
// markup: the state is written by any node of the mesh.
"use strict";

const POLL_MS = 1000;
const HISTORY = 60;
const PAGE = 50;

// A token given to the page (?token=...) is passed on to every API request.
const token = new URLSearchParams(location.search).get("token");

const state = {
  lastStatus: null,
  lastLag: null,
  traffic: [],     // {sent, received} bytes per second
  lag: [],         // mean lag (ms) of the writes applied in each interval, or null
  search: "",
  cursor: null,    // the key after which the shown page starts
  nextCursor: null,
  keysVersion: null, // the state version of the page shown
};

function api(path, params = {}) {
  const query = new URLSearchParams(params);
  if (token) query.set("token", token);
  const qs = query.toString();
  return fetch(path + (qs ? "?" + qs : ""), { cache: "no-store" }).then((r) => {
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  });
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function formatBytes(n) {
  if (n < 1024) return n.toFixed(0) + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "-";
  return ms < 1000 ? ms.toFixed(1) + " ms" : (ms / 1000).toFixed(2) + " s";
}

function push(list, value) {
  list.push(value);
  while (list.length > HISTORY) list.shift();
}

function showStatus(status) {
  document.getElementById("node-id").textContent = status.node_id;
  const p = status.peers;
  document.getElementById("summary").textContent =
    `${status.data_keys} keys, ${status.tombstones} tombstones · ` +
    `${p.alive_peers} alive, ${p.suspect_peers} suspect, ${p.dead_peers} dead peers · ` +
    `${status.pending_acks} datagrams unacknowledged · port ${status.port}` +
    (status.running ? "" : " · stopped");
  const c = status.counters;
  const last = state.lastStatus;
  if (last) {
    const secs = POLL_MS / 1000;
    push(state.traffic, {
      sent: Math.max(0, c.bytes_sent - last.counters.bytes_sent) / secs,
      received: Math.max(0, c.bytes_received - last.counters.bytes_received) / secs,
    });
    const t = state.traffic[state.traffic.length - 1];
    document.getElementById("traffic-now").textContent =
      `now ${formatBytes(t.sent)}/s out, ${formatBytes(t.received)}/s in`;
  }
  state.lastStatus = status;
  drawChart("traffic-chart", [
    { values: state.traffic.map((t) => t.sent), color: "#2f6fdf" },
    { values: state.traffic.map((t) => t.received), color: "#e07b20" },
  ], formatBytes);
}

// The smallest bucket bound below which `q` of the writes fall.
function quantile(lag, q) {
  let seen = 0;
  for (const b of lag.buckets) {
    seen += b.count;
    if (seen >= q * lag.count) return b.le_ms;
  }
  return null;
}

function showPropagation(lag) {
  const last = state.lastLag;
  if (last) {
    const n = lag.count - last.count;
    push(state.lag, n > 0 ? (lag.sum_ms - last.sum_ms) / n : null);
  }
  state.lastLag = lag;
  const text = document.getElementById("propagation-now");
  if (lag.count > 0) {
    const p50 = quantile(lag, 0.5);
    const p99 = quantile(lag, 0.99);
    const bound = (v) => (v === null ? "> 60 s" : "≤ " + formatMs(v));
    text.textContent = `${lag.count} remote writes applied · mean ${formatMs(lag.sum_ms / lag.count)}` +
      ` · median ${bound(p50)} · p99 ${bound(p99)}`;
  }
  drawChart("propagation-chart", [
    { values: state.lag.map((v) => (v === null ? 0 : v)), color: "#7a3fc4" },
  ], formatMs);
}

function drawChart(id, series, format) {
  const canvas = document.getElementById(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 18;
  ctx.clearRect(0, 0, w, h);
  let max = 0;
  for (const s of series) for (const v of s.values) max = Math.max(max, v);
  if (max === 0) max = 1;
  ctx.strokeStyle = "#d5dae3";
  ctx.beginPath();
  ctx.moveTo(0, h - pad); ctx.lineTo(w, h - pad);
  ctx.stroke();
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.fillText(format(max), 4, 12);
  ctx.fillText(`last ${HISTORY} s`, w - 60, h - 4);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    // The newest point sits at the right edge; history grows to the left.
    const offset = HISTORY - s.values.length;
    s.values.forEach((v, i) => {
      const x = ((offset + i) / (HISTORY - 1)) * w;
      const y = h - pad - (v / max) * (h - 2 * pad);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

function showPeers(peers) {
  const body = document.querySelector("#peers tbody");
  body.replaceChildren();
  if (peers.length === 0) {
    const row = el("tr");
    const cell = el("td", "no peers");
    cell.colSpan = 6;
    row.append(cell);
    body.append(row);
  }
  for (const p of peers) {
    const row = el("tr");
    row.dataset.node = p.node_id || "";
    row.append(
      el("td", p.node_id || "?"),
      el("td", p.addr),
      el("td", p.state + (p.bootstrap ? " (bootstrap)" : ""), "state-" + p.state),
      el("td", formatMs(p.rtt_ms)),
      el("td", p.last_seen_ms === null ? "never" : (p.last_seen_ms / 1000).toFixed(1) + " s ago"),
      el("td", String(p.pending_acks)),
    );
    body.append(row);
  }
  drawMembership(peers);
}

const STATE_COLORS = { alive: "#188038", suspect: "#b06000", dead: "#c5221f", unknown: "#999" };

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawMembership(peers) {
  const root = document.getElementById("membership");
  root.replaceChildren();
  const me = state.lastStatus ? state.lastStatus.node_id : "this node";
  peers.forEach((p, i) => {
    const angle = (2 * Math.PI * i) / Math.max(peers.length, 1) - Math.PI / 2;
    const x = 80 * Math.cos(angle), y = 80 * Math.sin(angle);
    const color = STATE_COLORS[p.state] || "#999";
    root.append(
      svg("line", { x1: 0, y1: 0, x2: x, y2: y, stroke: color, "stroke-width": 2,
        "stroke-dasharray": p.state === "alive" ? "" : "4 3" }),
      svg("circle", { cx: x, cy: y, r: 10, fill: color }),
      svg("text", { x: x, y: y + 24, "text-anchor": "middle", "font-size": 11 }, p.node_id || p.addr),
    );
  });
  root.append(
    svg("circle", { cx: 0, cy: 0, r: 14, fill: "#1d2330" }),
    svg("text", { x: 0, y: 30, "text-anchor": "middle", "font-size": 12, "font-weight": "bold" }, me),
  );
}

function showKeys(page) {
  const body = document.querySelector("#keys tbody");
  body.replaceChildren();
  for (const e of page.entries) {
    const row = el("tr");
    row.dataset.key = e.key;
    const written = new Date(e.written_ms).toISOString().replace("T", " ").replace("Z", "");
    const origin = el("td", e.origin_node || e.origin);
    origin.title = "origin " + e.origin;
    const time = el("td", written);
    time.title = "HLC " + e.hlc;
    row.append(el("td", e.key), el("td", JSON.stringify(e.value), "value"), origin, time);
    body.append(row);
  }
  const shown = page.entries.length;
  document.getElementById("keys-count").textContent =
    `${page.matched} matching key${page.matched === 1 ? "" : "s"}` +
    (shown < page.matched ? `, showing ${shown}` : "");
  state.nextCursor = page.next_after;
  document.getElementById("next-page").disabled = !page.next_after;
  document.getElementById("first-page").disabled = state.cursor === null;
}

function refreshKeys() {
  const params = { q: state.search, limit: PAGE };
  if (state.cursor !== null) params.after = state.cursor;
  return api("/api/keys", params).then(showKeys);
}

function showError(error) {
  const box = document.getElementById("error");
  if (error) {
    box.textContent = "cannot reach the node: " + error.message;
    box.hidden = false;
  } else {
    box.hidden = true;
  }
}

// A page of keys scans the node's whole state, so it is asked for again only when the
// state has changed since the page shown.
function refreshKeysIfChanged(status) {
  if (status.state_version === state.keysVersion) return null;
  return refreshKeys().then(() => { state.keysVersion = status.state_version; });
}

function poll() {
  Promise.all([
    api("/api/status").then((status) => {
      showStatus(status);
      return refreshKeysIfChanged(status);
    }),
    api("/api/peers").then(showPeers),
    api("/api/propagation").then(showPropagation),
  ]).then(() => showError(null), showError)
    .finally(() => setTimeout(poll, POLL_MS));
}

let searchTimer = null;
document.getElementById("search").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.search = event.target.value;
    state.cursor = null;
    refreshKeys().catch(showError);
  }, 150);
});
document.getElementById("next-page").addEventListener("click", () => {
  if (state.nextCursor) {
    state.cursor = state.nextCursor;
    refreshKeys().catch(showError);
  }
});
document.getElementById("first-page").addEventListener("click", () => {
  state.cursor = null;
  refreshKeys().catch(showError);
});

poll();
