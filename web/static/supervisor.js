// The supervisor's queue view: polls GET /api/supervisor/snapshot (routing.store
// RouterStore.snapshot(), shaped by routing.scoring.build_snapshot) and renders it.

import { agentStateName, initLanguage, languageName, t } from "./i18n.js";
import { errorText } from "./notices.js";

const URL_SNAPSHOT = "/api/supervisor/snapshot";
const EVERY_MS = 3000;
const EVERY_WHEN_MISSING_MS = 15000;
const STATES = ["available", "busy", "wrap_up", "away", "offline"];

initLanguage();

const $ = (id) => document.getElementById(id);
const body = $("queues").tBodies[0];
const status = $("snapshot-status");
const summary = $("summary");

export function waitText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("dur.s", { s });
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}:${String(s % 60).padStart(2, "0")}` : t("dur.hm", { h: Math.floor(m / 60), m: m % 60 });
}

function agentsText(agents) {
  const parts = STATES.filter((s) => s !== "offline" && agents?.[s]).map(
    (s) => t("supervisor.agents_in_state", { n: agents[s], state: agentStateName(s) }),
  );
  return parts.length ? parts.join(" · ") : t("supervisor.none_signed_in");
}

function render(snapshot) {
  const groups = snapshot.groups ?? [];
  const rows = groups.map((g) => {
    const row = document.createElement("tr");
    if (g.waiting > 0 && !(g.agents?.available > 0)) row.className = "alert";
    const cells = [
      languageName(g.language),
      g.skill,
      String(g.waiting),
      g.waiting ? waitText(g.longest_wait_s) : "—",
      agentsText(g.agents),
      g.service_level === null || g.service_level === undefined
        ? "—"
        : `${Math.round(g.service_level * 100)}% (${g.answered_in_sl}/${g.answered})`,
    ];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i === 2 || i === 3 || i === 5) cell.className = "num";
    });
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    const cell = row.insertCell();
    cell.colSpan = 6;
    cell.className = "hint";
    cell.textContent = t("supervisor.no_queues");
    rows.push(row);
  }
  body.replaceChildren(...rows);
  $("queues").classList.remove("hidden");
  if (snapshot.service_level_s) {
    $("sl-head").textContent = t("supervisor.col_sl_within", { s: snapshot.service_level_s });
  }
  const totals = snapshot.agents ?? {};
  summary.replaceChildren(
    ...[
      [t("supervisor.waiting"), snapshot.waiting ?? 0],
      ...STATES.map((s) => [t("supervisor.advisors_in_state", { state: agentStateName(s) }), totals[s] ?? 0]),
    ].map(([label, value]) => {
      const box = document.createElement("div");
      box.className = "stat";
      const strong = document.createElement("strong");
      strong.textContent = String(value);
      const span = document.createElement("span");
      span.textContent = label;
      box.append(strong, span);
      return box;
    }),
  );
  const at = snapshot.time ? new Date(snapshot.time * 1000) : new Date();
  status.textContent = t("supervisor.updated", { time: at.toLocaleTimeString() });
  status.classList.remove("error");
}

function unavailable(text, { keep = false } = {}) {
  status.textContent = text;
  status.classList.add("error");
  if (keep) return; // a passing failure: the last numbers stay, marked stale by the status line
  $("queues").classList.add("hidden");
  body.replaceChildren();
  summary.replaceChildren();
}

async function poll() {
  let next = EVERY_MS;
  try {
    const response = await fetch(URL_SNAPSHOT, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.status === 404) {
      unavailable(t("supervisor.unavailable"));
      next = EVERY_WHEN_MISSING_MS;
    } else if (response.status === 401 || response.status === 403) {
      unavailable(t("supervisor.unavailable_sign_in"));
      next = EVERY_WHEN_MISSING_MS;
    } else if (!response.ok) {
      unavailable(t("supervisor.unavailable_http", { status: response.status }), { keep: true });
    } else {
      render(await response.json());
    }
  } catch (err) {
    unavailable(t("supervisor.unavailable_error", { error: errorText(err) }), { keep: true });
  }
  setTimeout(poll, document.hidden ? Math.max(next, EVERY_WHEN_MISSING_MS) : next);
}

poll();
