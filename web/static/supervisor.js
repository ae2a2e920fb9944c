// The supervisor's floor, live: one EventSource on GET /api/supervisor/feed (views/supervisor.py)
// pushes a `history` event (the last hour's samples) and then a `floor` frame on every router
// event: { snapshot (routing.scoring.build_snapshot + at_risk), advisors, waiting, sample,
// alarms (the newest, newest first; contacts/alarms.py), alarms_recent (within the hour) }.
// No polling: the browser's EventSource reconnects by itself when the stream drops.
// Actions are POSTs with the page's CSRF token: force an advisor away/offline, re-queue a contact.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { agentStateName, channelsText, duration, has, initLanguage, languageName, t } from "./i18n.js";
import { errorText, noticeOn } from "./notices.js";
import { csrfToken } from "./ws.js";

const URL_FEED = "/api/supervisor/feed";
const HISTORY_S = 3600;
const STATES = ["available", "busy", "wrap_up", "away", "offline"];

initLanguage();

const $ = (id) => document.getElementById(id);
const status = $("snapshot-status");
const notice = noticeOn($("action-notice"));

export function waitText(seconds) {
  return duration(seconds);
}

function cell(row, text, className = "") {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function el(tag, { text = "", className = "", attrs = {} } = {}) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function emptyRow(body, columns, text) {
  const row = body.insertRow();
  row.className = "empty";
  const td = cell(row, text);
  td.colSpan = columns;
}

// ------------------------------------------------------------------ actions

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body ?? {}),
  });
  if (!response.ok) throw new Error((await response.text()) || `HTTP ${response.status}`);
  return response.json();
}

async function act(button, work, done) {
  button.disabled = true;
  try {
    await work();
    notice(done);
  } catch (err) {
    notice(t("supervisor.action_failed", { error: errorText(err) }), "error");
  } finally {
    button.disabled = false;
  }
}

function forceButton(advisor, state) {
  const button = el("button", {
    text: t(`supervisor.force_${state}`),
    className: `mini ${state === "offline" ? "warn" : "secondary"}`,
    attrs: { type: "button", "aria-label": t(`supervisor.force_${state}_of`, { name: advisor.name }) },
  });
  button.disabled = advisor.state === state;
  button.addEventListener("click", () =>
    act(
      button,
      () => post(`/api/supervisor/advisors/${encodeURIComponent(advisor.id)}/state`, { state }),
      t("supervisor.forced", { name: advisor.name, state: agentStateName(state) }),
    ),
  );
  return button;
}

function requeueButton(contactId, label) {
  const button = el("button", {
    text: t("supervisor.requeue"),
    className: "mini secondary",
    attrs: { type: "button", "aria-label": label },
  });
  button.addEventListener("click", () =>
    act(
      button,
      () => post(`/api/supervisor/contacts/${encodeURIComponent(contactId)}/requeue`),
      t("supervisor.requeued"),
    ),
  );
  return button;
}

// ------------------------------------------------------------------ tables

function skillText(skills) {
  const entries = Object.entries(skills ?? {});
  return entries.length ? entries.map(([k, v]) => `${k} ≥ ${v}`).join(", ") : "—";
}

function flagText(w) {
  if (w.stranded) return t(`supervisor.stranded_${w.stranded}`);
  if (w.at_risk) return t(`supervisor.at_risk_${w.at_risk}`);
  return "";
}

function renderWaiting(waiting) {
  const body = $("waiting").tBodies[0];
  body.replaceChildren();
  if (!waiting.length) return emptyRow(body, 9, t("supervisor.nobody_waiting"));
  for (const w of waiting) {
    const row = body.insertRow();
    row.dataset.contact = w.contact_id;
    if (w.stranded) row.className = "stranded";
    const who = cell(row, w.customer || t("supervisor.customer"));
    if (w.vip) who.append(el("span", { text: "VIP", className: "flag vip" }));
    cell(row, languageName(w.language));
    cell(row, channelsText([w.channel]));
    cell(row, skillText(w.skills));
    cell(row, String(w.priority), "num");
    cell(row, duration(w.waited_s), "num");
    cell(row, w.offered_to ?? "—", "offered-to");
    const flag = cell(row, "");
    const text = flagText(w);
    if (text) flag.append(el("span", { text, className: `flag ${w.stranded ? "stranded" : "at-risk"}` }));
    const actions = cell(row, "");
    if (w.state === "offered") {
      actions.append(requeueButton(w.contact_id, t("supervisor.requeue_from", { name: w.offered_to })));
    }
  }
}

function capacityNode(a) {
  const box = el("span", { className: "cap" });
  for (const ch of ["text", "voice", "video"]) {
    const cap = a.capacity?.[ch] ?? 0;
    if (!cap) continue;
    const used = a.load?.[ch] ?? 0;
    box.append(el("span", { text: `${channelsText([ch])} ${used}/${cap}`, className: used >= cap ? "full" : "" }));
  }
  return box;
}

function renderAdvisors(advisors) {
  const body = $("advisors").tBodies[0];
  body.replaceChildren();
  if (!advisors.length) return emptyRow(body, 6, t("supervisor.no_advisors"));
  for (const a of advisors) {
    const row = body.insertRow();
    row.dataset.agent = a.id;
    cell(row, a.name, "name");
    const state = cell(row, "");
    state.append(el("span", { text: agentStateName(a.state), className: "badge", attrs: { "data-state": a.state } }));
    cell(row, duration(a.in_state_s), "num");
    cell(row, a.offered ? t("supervisor.held_offered", { n: a.held, m: a.offered }) : String(a.held), "num");
    row.insertCell().append(capacityNode(a));
    const actions = row.insertCell();
    actions.append(forceButton(a, "away"), forceButton(a, "offline"));
    for (const contactId of a.assigned ?? []) {
      actions.append(requeueButton(contactId, t("supervisor.requeue_from", { name: a.name })));
    }
  }
}

function agentsText(agents) {
  const parts = STATES.filter((s) => s !== "offline" && agents?.[s]).map(
    (s) => t("supervisor.agents_in_state", { n: agents[s], state: agentStateName(s) }),
  );
  return parts.length ? parts.join(" · ") : t("supervisor.none_signed_in");
}

function renderQueues(snapshot) {
  const body = $("queues").tBodies[0];
  body.replaceChildren();
  for (const g of snapshot.groups ?? []) {
    const row = body.insertRow();
    if (g.waiting > 0 && !(g.agents?.available > 0)) row.className = "alert";
    cell(row, languageName(g.language));
    cell(row, g.skill);
    cell(row, String(g.waiting), "num");
    cell(row, g.waiting ? duration(g.longest_wait_s) : "—", "num");
    cell(row, agentsText(g.agents));
    cell(
      row,
      g.service_level === null || g.service_level === undefined
        ? "—"
        : `${Math.round(g.service_level * 100)}% (${g.answered_in_sl}/${g.answered})`,
      "num",
    );
  }
  if (!body.rows.length) emptyRow(body, 6, t("supervisor.no_queues"));
  if (snapshot.service_level_s) {
    $("sl-head").textContent = t("supervisor.col_sl_within", { s: snapshot.service_level_s });
  }
}

function renderSummary(frame) {
  const totals = frame.snapshot.agents ?? {};
  const stranded = frame.waiting.filter((w) => w.stranded).length;
  const items = [
    [t("supervisor.waiting"), frame.waiting.length],
    [t("supervisor.longest"), frame.waiting.length ? duration(frame.sample.longest_wait_s) : "—"],
    [t("supervisor.stranded"), stranded],
    [t("supervisor.alarms_recent"), frame.alarms_recent ?? 0],
    ...STATES.map((s) => [t("supervisor.advisors_in_state", { state: agentStateName(s) }), totals[s] ?? 0]),
  ];
  $("summary").replaceChildren(
    ...items.map(([label, value]) => {
      const box = el("div", { className: "stat" });
      box.append(el("strong", { text: String(value) }), el("span", { text: label }));
      return box;
    }),
  );
  const alert = $("stranded");
  const names = frame.waiting.filter((w) => w.stranded);
  setIfChanged(
    alert,
    names.length
      ? t("supervisor.stranded_alert", {
          n: names.length,
          available: frame.advisors.filter((a) => ["available", "busy", "wrap_up"].includes(a.state)).length,
        })
      : "",
  );
  alert.classList.toggle("hidden", !names.length);
}

// ------------------------------------------------------------------ alarms

const alarmsSeen = new Set(); // ids already shown
const alarmsNew = new Set(); // ids raised while this page was open: highlighted
let alarmsLoaded = false;

function alarmKind(kind) {
  return has(`supervisor.alarm_${kind}`) ? t(`supervisor.alarm_${kind}`) : kind;
}

function alarmTime(a) {
  const at = new Date(a.at);
  const when = Number.isNaN(at.getTime()) ? new Date(Date.now() - a.age_s * 1000) : at;
  const today = when.toDateString() === new Date().toDateString();
  const text = today ? when.toLocaleTimeString() : when.toLocaleString();
  return t("supervisor.alarm_at", { time: text, ago: duration(a.age_s) });
}

function setIfChanged(node, text) {
  // an alert region is read out on every change: only on a real one
  if (node.textContent !== text) node.textContent = text;
}

function renderAlarms(alarms, recent) {
  const body = $("alarms").tBodies[0];
  body.replaceChildren();
  for (const a of alarms) {
    if (alarmsLoaded && !alarmsSeen.has(a.id)) alarmsNew.add(a.id);
    alarmsSeen.add(a.id);
  }
  alarmsLoaded = true;
  if (!alarms.length) emptyRow(body, 5, t("supervisor.no_alarms"));
  for (const a of alarms) {
    const row = body.insertRow();
    row.dataset.alarm = a.id;
    if (alarmsNew.has(a.id)) row.className = "new";
    cell(row, alarmTime(a), "when");
    cell(row, "").append(el("span", { text: alarmKind(a.kind), className: "flag alarm" }));
    const contact = cell(row, a.contact_id ? a.contact_id.slice(0, 8) : "—", "contact");
    if (a.contact_id) contact.title = a.contact_id;
    cell(row, a.message);
    cell(row, a.instance || "—");
  }
  const banner = $("alarm-banner");
  setIfChanged(banner, recent && alarms.length ? t("supervisor.alarm_banner", { n: recent, message: alarms[0].message }) : "");
  banner.classList.toggle("hidden", !(recent && alarms.length));
}

// ------------------------------------------------------------------ charts (uPlot)

const points = []; // {t, waiting, longest_wait_s, service_level}

function seriesOf(key, scale = 1) {
  return points.map((p) => (p[key] === null || p[key] === undefined ? null : p[key] * scale));
}

function makeChart(id, label, stroke, fill, range = null) {
  const node = $(id);
  const opts = {
    width: Math.max(260, node.clientWidth || 320),
    height: 160,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: true }, y: range ? { range } : { range: (u, min, max) => [0, Math.max(2, Math.ceil(max * 1.1))] } },
    axes: [{ stroke: "#5c677d", grid: { stroke: "#e3e7ec" } }, { stroke: "#5c677d", grid: { stroke: "#e3e7ec" }, size: 44 }],
    series: [{}, { label, stroke, fill, width: 2, spanGaps: true }],
  };
  return new uPlot(opts, [[], []], node);
}

const charts = {
  queue: makeChart("chart-queue", t("supervisor.chart_queue"), "#0b6e4f", "rgba(11,110,79,.12)"),
  wait: makeChart("chart-wait", t("supervisor.chart_wait"), "#8a4b08", "rgba(138,75,8,.12)"),
  sl: makeChart("chart-sl", t("supervisor.chart_sl"), "#1d4ea8", "rgba(29,78,168,.10)", [0, 100]),
};

function drawCharts() {
  const cutoff = Date.now() / 1000 - HISTORY_S;
  while (points.length && points[0].t < cutoff) points.shift();
  const xs = points.map((p) => p.t);
  charts.queue.setData([xs, seriesOf("waiting")]);
  charts.wait.setData([xs, seriesOf("longest_wait_s")]);
  charts.sl.setData([xs, seriesOf("service_level", 100)]);
  document.body.dataset.chartPoints = String(points.length);
}

window.addEventListener("resize", () => {
  for (const [key, chart] of Object.entries(charts)) {
    const node = $(`chart-${key}`);
    chart.setSize({ width: Math.max(260, node.clientWidth), height: 160 });
  }
});

// ------------------------------------------------------------------ the feed

function setStatus(text, state) {
  status.textContent = text;
  status.classList.toggle("on", state === "on");
  status.classList.toggle("off", state === "off");
}

function onFloor(frame) {
  renderSummary(frame);
  renderWaiting(frame.waiting ?? []);
  renderAdvisors(frame.advisors ?? []);
  renderQueues(frame.snapshot ?? {});
  renderAlarms(frame.alarms ?? [], frame.alarms_recent ?? 0);
  if (frame.sample) {
    const last = points[points.length - 1];
    if (!last || frame.sample.t > last.t) points.push(frame.sample);
    drawCharts();
  }
  const at = frame.snapshot?.time ? new Date(frame.snapshot.time * 1000) : new Date();
  setStatus(t("supervisor.updated", { time: at.toLocaleTimeString() }), "on");
}

function connect() {
  const source = new EventSource(URL_FEED);
  source.addEventListener("history", (e) => {
    points.splice(0, points.length, ...JSON.parse(e.data));
    drawCharts();
  });
  source.addEventListener("floor", (e) => onFloor(JSON.parse(e.data)));
  source.addEventListener("error", () => {
    // EventSource retries by itself; a closed one (401/403) does not.
    if (source.readyState === EventSource.CLOSED) setStatus(t("supervisor.unavailable_sign_in"), "off");
    else setStatus(t("supervisor.reconnecting"), "off");
  });
}

connect();
