// The replay of one contact: both parties' media side by side on one clock, the transcript and
// events beside it, the recording's seal, verification, hold and export.
//
// GET /api/compliance/contacts/{id}/timeline places every track on the contact's clock
// (offset_s: where the file's first frame falls, from its STARTED_AT tag). The player keeps
// that clock itself and drives every element from it: at time T a track plays T - offset_s when
// that lies within the file, and is paused and hidden otherwise. Elements that drift are nudged
// (playback rate) or, past half a second, moved; while an element waits for data the clock
// waits too, so the parties never slide apart.

import { api, cover, currentCase, mountCase, withGrant } from "./compliance-case.js";
import {
  apply,
  clock,
  clockTenths,
  has,
  dateTime,
  dateTimeSeconds,
  duration,
  mountLanguage,
  named,
  size,
  t,
} from "./compliance-i18n.js";

const $ = (id) => document.getElementById(id);
const contactId = $("replay").dataset.contactId;
const base = `/api/compliance/contacts/${encodeURIComponent(contactId)}`;
const PARTY_ORDER = ["customer", "advisor"];
const NUDGE_S = 0.08;
const JUMP_S = 0.5;
const MAX_STALL_MS = 3000;

let detail = null;
let replay = null;
let manifest = null;
let player = null;
let holdWanted = true;
let lastExport = null;
let lastAccess = null;

// ------------------------------------------------------------------ the player

class Player {
  constructor(data, stage) {
    this.total = Math.max(data.duration_s, 0.1);
    this.pauses = data.pauses;
    this.t = 0;
    this.playing = false;
    this.stalledSince = null;
    this.listeners = [];
    this.audio = null;
    this.tracks = data.tracks
      .filter((track) => track.offset_s !== null)
      .map((track) => ({ ...track, el: this.element(track), analyser: null }));
    // Both parties side by side whenever anything was recorded (a party without media says so).
    const parties = data.tracks.length
      ? [...new Set([...PARTY_ORDER, ...data.tracks.map((track) => track.party)])]
      : [];
    this.parties = parties.map((party) => this.figure(party, stage));
    if (!parties.length) {
      const none = document.createElement("p");
      none.className = "no-media";
      none.dataset.i18n = "replay.no_media_all";
      none.textContent = t("replay.no_media_all");
      stage.append(none);
    }
    this.timer = setInterval(() => this.tick(), 50);
    this.last = performance.now();
  }

  element(track) {
    const el = document.createElement(track.kind === "video" ? "video" : "audio");
    el.src = withGrant(track.url);
    el.preload = "auto";
    el.playsInline = true;
    el.dataset.name = track.name;
    el.dataset.offset = String(track.offset_s);
    el.className = `track ${track.kind}`;
    if (track.kind === "video") el.muted = true; // the sound is in the audio files
    el.addEventListener("loadedmetadata", () => this.sync(true));
    return el;
  }

  figure(party, stage) {
    const figure = document.createElement("figure");
    figure.className = "party";
    figure.dataset.party = party;
    const screen = document.createElement("div");
    screen.className = "screen";
    const level = document.createElement("canvas");
    level.className = "level hidden";
    level.width = 320;
    level.height = 120;
    const placeholder = document.createElement("div");
    placeholder.className = "placeholder";
    const caption = document.createElement("figcaption");
    caption.dataset.party = party;
    const own = this.tracks.filter((track) => track.party === party);
    for (const track of own) screen.append(track.el);
    screen.append(level, placeholder);
    figure.append(screen, caption);
    stage.append(figure);
    return { party, figure, screen, level, placeholder, tracks: own };
  }

  on(listener) {
    this.listeners.push(listener);
  }

  local(track, at = this.t) {
    return at - track.offset_s;
  }

  active(track, at = this.t) {
    const local = this.local(track, at);
    const length = track.duration_s ?? (Number.isFinite(track.el.duration) ? track.el.duration : Infinity);
    return local >= 0 && local < length - 0.02;
  }

  pausedAt(at = this.t) {
    return this.pauses.find((p) => at >= p.start_s && at < p.end_s) ?? null;
  }

  seek(at) {
    this.t = Math.min(Math.max(0, at), this.total);
    this.last = performance.now();
    this.sync(true);
    this.emit();
  }

  async play() {
    if (this.t >= this.total - 0.05) this.t = 0;
    this.playing = true;
    this.last = performance.now();
    this.levels();
    this.sync(true);
    this.emit();
  }

  pause() {
    this.playing = false;
    for (const track of this.tracks) track.el.pause();
    this.emit();
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  /** Meters for voice: the audio goes through an analyser (made on the first play, a click). */
  levels() {
    if (this.audio || !window.AudioContext) {
      this.audio?.resume();
      return;
    }
    try {
      this.audio = new AudioContext();
      for (const track of this.tracks.filter((tr) => tr.kind === "audio")) {
        const source = this.audio.createMediaElementSource(track.el);
        track.analyser = this.audio.createAnalyser();
        track.analyser.fftSize = 512;
        source.connect(track.analyser).connect(this.audio.destination);
      }
    } catch {
      this.audio = null; // no meters; the sound plays as it is
    }
  }

  tick() {
    const now = performance.now();
    const dt = (now - this.last) / 1000;
    this.last = now;
    if (this.playing) {
      const waiting = this.tracks.some(
        (track) => this.active(track) && (track.el.seeking || track.el.readyState < 2) && !track.el.error,
      );
      if (waiting) this.stalledSince ??= now;
      else this.stalledSince = null;
      if (!waiting || now - this.stalledSince > MAX_STALL_MS) this.t += dt;
      if (this.t >= this.total) {
        this.t = this.total;
        this.pause();
      }
      this.sync(false);
    }
    this.draw();
    this.emit();
  }

  sync(force) {
    for (const track of this.tracks) {
      const el = track.el;
      if (!this.active(track)) {
        if (!el.paused) el.pause();
        el.classList.remove("on");
        continue;
      }
      el.classList.add("on");
      const want = this.local(track);
      const drift = el.currentTime - want;
      if (el.readyState >= 1 && (force || Math.abs(drift) > JUMP_S)) {
        el.currentTime = want;
        el.playbackRate = 1;
      } else if (this.playing && Math.abs(drift) > NUDGE_S) {
        el.playbackRate = drift > 0 ? 0.9 : 1.1;
      } else {
        el.playbackRate = 1;
      }
      if (this.playing && el.paused) el.play().catch(() => {});
      if (!this.playing && !el.paused) el.pause();
    }
    this.placeholders();
  }

  placeholders() {
    const gap = this.pausedAt();
    for (const view of this.parties) {
      const video = view.tracks.find((tr) => tr.kind === "video" && this.active(tr));
      const audio = view.tracks.find((tr) => tr.kind === "audio" && this.active(tr));
      // A secure pause covers the picture, whatever a file holds for that moment.
      view.figure.dataset.showing = gap ? "paused" : video ? "video" : audio ? "audio" : "none";
      view.level.classList.toggle("hidden", Boolean(video) || !audio || Boolean(gap));
      let text = "";
      if (gap) text = gap.reason ? `${t("replay.paused_media")} · ${gap.reason}` : t("replay.paused_media");
      else if (!video && audio) text = t("replay.audio_only");
      else if (!video) text = view.tracks.length ? t("replay.no_media") : t("replay.no_media_all");
      view.placeholder.textContent = text;
      view.placeholder.classList.toggle("hidden", Boolean(video) && !gap);
      view.placeholder.classList.toggle("gap", Boolean(gap));
    }
  }

  draw() {
    for (const view of this.parties) {
      if (view.level.classList.contains("hidden")) continue;
      const audio = view.tracks.find((tr) => tr.kind === "audio" && this.active(tr));
      const context = view.level.getContext("2d");
      const { width, height } = view.level;
      context.clearRect(0, 0, width, height);
      let values = new Uint8Array(64).fill(128);
      if (audio?.analyser) {
        values = new Uint8Array(audio.analyser.fftSize);
        audio.analyser.getByteTimeDomainData(values);
      }
      const bars = 32;
      const step = Math.floor(values.length / bars);
      context.fillStyle = "#7fd1ae";
      for (let i = 0; i < bars; i += 1) {
        let peak = 0;
        for (let j = i * step; j < (i + 1) * step; j += 1) peak = Math.max(peak, Math.abs(values[j] - 128));
        const h = Math.max(3, (peak / 128) * height * 0.9);
        context.fillRect(i * (width / bars) + 2, (height - h) / 2, width / bars - 4, h);
      }
    }
  }

  emit() {
    for (const listener of this.listeners) listener(this);
  }
}

// ------------------------------------------------------------------ the seek bar

function drawLanes(data) {
  const lanes = $("lanes");
  lanes.replaceChildren();
  const total = Math.max(data.duration_s, 0.1);
  const pct = (s) => `${(Math.min(Math.max(s, 0), total) / total) * 100}%`;
  for (const view of player.parties) {
    const lane = document.createElement("div");
    lane.className = "lane";
    lane.dataset.party = view.party;
    for (const track of view.tracks) {
      const piece = document.createElement("span");
      piece.className = `piece ${track.kind}`;
      piece.style.left = pct(track.offset_s);
      piece.style.width = `calc(${pct(track.offset_s + (track.duration_s ?? 0))} - ${pct(track.offset_s)})`;
      piece.title = `${track.name} · ${clockTenths(track.offset_s)}–${clockTenths(track.offset_s + (track.duration_s ?? 0))}`;
      lane.append(piece);
    }
    lanes.append(lane);
  }
  const ticks = document.createElement("div");
  ticks.className = "lane ticks";
  for (const entry of data.entries.filter((e) => e.kind === "chat" || e.kind === "bot")) {
    const tick = document.createElement("span");
    tick.className = "tick";
    tick.style.left = pct(entry.offset_s);
    ticks.append(tick);
  }
  lanes.append(ticks);
  for (const gap of data.pauses) {
    const band = document.createElement("span");
    band.className = "gap";
    band.style.left = pct(gap.start_s);
    band.style.width = `calc(${pct(gap.end_s)} - ${pct(gap.start_s)})`;
    band.title = gapText(gap);
    lanes.append(band);
  }
  const input = $("seek-input");
  input.max = String(total);
}

function captions() {
  for (const caption of document.querySelectorAll("figure.party figcaption")) {
    const party = caption.dataset.party;
    const who = party === "customer" ? detail.customer.name : party === "advisor" ? detail.advisors.map((a) => a.name).join(" → ") : "";
    caption.replaceChildren(Object.assign(document.createElement("strong"), { textContent: t(`party.${party}`) }));
    if (who) caption.append(` · ${who}`);
  }
}

function gapText(gap) {
  const who = nameOf(gap.by);
  return gap.reason ? t("replay.gap", { who, reason: gap.reason }) : t("replay.gap_no_reason", { who });
}

// ------------------------------------------------------------------ transcript and events

function nameOf(ref) {
  if (!ref) return "—";
  if (["customer", "advisor", "bot", "system", "media", "router"].includes(ref)) return t(`party.${ref}`);
  if (ref === detail?.customer.ref) return detail.customer.name;
  const advisor = detail?.advisors.find((a) => a.ref === ref);
  if (advisor) return advisor.name;
  if (ref === "bot:rasa" || ref.startsWith("bot")) return t("party.bot");
  if (ref.startsWith("system")) return t("party.system");
  return ref;
}

function channelsText(list) {
  return [list ?? []].flat().map((c) => t(`channel.${c}`)).join(" + ");
}

function explanationText(why) {
  const winner = why?.winner;
  if (!winner) return typeof why?.why === "string" ? why.why : "";
  if (why.trigger === "agent") return t("entry.offered_agent");
  return t("entry.offered_contact", {
    count: Math.max((why.candidates ?? []).length, why.considered ?? 0, 1),
    fit: `${winner.fit_required} + ${winner.fit_optional}`,
    idle: duration(winner.idle_s),
  });
}

function agentName(agentId) {
  const match = /^a?(\d+)$/.exec(agentId ?? "");
  const advisor = match && detail?.advisors.find((a) => String(a.id) === match[1]);
  return advisor ? advisor.name : agentId ?? null;
}

/** A party's media as they reported it: microphone, camera, connection (loss, round trip). */
function mediaStateText(data) {
  const text = t("entry.media_state", {
    microphone: named("mic.", data.microphone) || "—",
    camera: named("cam.", data.camera) || "—",
    connection: named("conn.", data.connection) || "—",
  });
  const loss = typeof data.loss_pct === "number" ? t("entry.loss", { pct: data.loss_pct }) : null;
  const rtt = typeof data.rtt_ms === "number" ? t("entry.rtt", { ms: Math.round(data.rtt_ms) }) : null;
  return joined(text, loss, rtt);
}

/** "main (detail · detail)", leaving out what the record does not say. */
function joined(main, ...details) {
  const known = details.filter((d) => d !== undefined && d !== null && d !== "");
  return known.length ? `${main} (${known.join(" · ")})` : main;
}

/** An entry's fields: a timeline `event` line carries its database event's data nested. */
function fieldsOf(entry) {
  const data = entry.data ?? {};
  if (entry.kind === "event" && data.data && typeof data.data === "object") return { ...data.data, ...data, data: undefined };
  return data;
}

function isLine(entry) {
  return (entry.kind === "chat" || entry.kind === "bot") && entry.label === "chat";
}

/** (who, what) of one entry, in the current language. */
function describe(entry) {
  const data = fieldsOf(entry);
  const label = entry.label;
  if (isLine(entry)) {
    const role = data.sender ?? data.sender_role ?? entry.who;
    const who = role === "bot" ? t("party.bot") : role === "system" ? t("party.system") : nameOf(data.sender_ref ?? entry.who);
    return [who, entry.text ?? data.text ?? ""];
  }
  if (entry.kind === "bot" && label !== "handoff") {
    const understood = data.intent ? named("intent.", data.intent) : null;
    const confidence = typeof data.confidence === "number" ? `${Math.round(data.confidence * 100)}%` : null;
    return [t("entry.bot_turn"), joined(t("entry.bot_understood", { intent: understood ?? "—" }), confidence, data.error)];
  }
  if (entry.kind === "routing" && data.decision) {
    const decision = data.decision;
    if (decision === "offer_created") {
      const agent = agentName(data.agent_id);
      const offered = agent ? t("entry.offered", { agent }) : t("entry.offered_someone");
      const why = explanationText(data.explanation);
      return [t("party.router"), why ? `${offered}: ${why}` : offered];
    }
    const key = `entry.routing_${decision.replace(/^offer_/, "")}`;
    return [t("party.router"), joined(has(key) ? t(key) : decision.replaceAll("_", " "), agentName(data.agent_id))];
  }
  if (entry.kind === "upgrade") {
    const key = data.agreed ? "entry.upgraded" : "entry.upgrade_asked";
    return [nameOf(data.actor ?? data.by), t(key, { channels: channelsText(data.channel) })];
  }
  if (entry.kind === "pause") return [nameOf(data.by ?? entry.who), data.reason ? `${t("entry.pause")}: ${data.reason}` : t("entry.pause")];
  if (entry.kind === "resume") return [nameOf(data.by ?? entry.who), t("entry.resume")];
  if (entry.kind === "recorder_failure") return [t("party.system"), t("entry.failure", { text: data.error ?? entry.text ?? label })];
  if (entry.kind === "media_open" || entry.kind === "media_close") {
    const what = [named("party.", data.party), named("kind.", data.media), t(entry.kind === "media_open" ? "media.open" : "media.close")];
    return [t("party.media"), what.filter(Boolean).join(" ")];
  }
  if (label.startsWith("peer_")) {
    const what = [named("party.", data.party), named("media.", label.slice(5))];
    return [t("party.media"), what.filter(Boolean).join(" ")];
  }
  const state = data.from || data.to ? t("entry.state", { from: named("state.", data.from) || "—", to: named("state.", data.to) || "—" }) : null;
  switch (label) {
    case "created":
      return [nameOf(entry.who), joined(t("entry.created"), channelsText(data.channels), data.language && t(`lang.${data.language}`), data.topic && named("topic.", data.topic))];
    case "handoff":
      return [
        t("party.bot"),
        joined(t("entry.handoff"), data.intent && t("replay.intent", { intent: named("intent.", data.intent) }), data.reason?.replaceAll("_", " ")),
      ];
    case "offered": {
      const agent = agentName(data.agent_id);
      return [t("party.router"), joined(agent ? t("entry.offered", { agent }) : t("entry.offered_someone"), state)];
    }
    case "accepted":
    case "rejected":
    case "offer_expired":
    case "ended":
    case "wrapup_done":
    case "transferred":
      return [nameOf(entry.who), joined(t(`entry.${label}`), state)];
    case "upgraded":
      return [nameOf(entry.who), t("entry.upgraded", { channels: channelsText(data.channels ?? data.to_channels) })];
    case "downgrade":
      return [nameOf(data.actor ?? data.by), t("entry.downgrade", { channels: channelsText(data.channel) })];
    case "downgraded":
      return [nameOf(entry.who), t("entry.downgraded", { channels: channelsText(data.channels) })];
    case "upgrade_declined":
      return [nameOf(data.actor ?? data.by), t("entry.upgrade_declined", { channels: channelsText(data.channel) })];
    case "media_state":
      return [nameOf(data.party), mediaStateText(data)];
    case "message_left":
      return [nameOf(data.actor ?? entry.who), data.callback ? t("entry.message_left_callback", { phone: data.phone ?? "—" }) : t("entry.message_left")];
    case "media_adopted":
      return [t("party.system"), t("entry.media_adopted")];
    case "handover":
      return [t("party.system"), t("entry.handover")];
    default:
      break;
  }
  if (state) return [nameOf(entry.who), joined(label.replaceAll("_", " "), state)];
  return [nameOf(entry.who), entry.text ?? label.replaceAll("_", " ")];
}

function renderEntries() {
  const list = $("entries");
  list.replaceChildren();
  replay.entries.forEach((entry, index) => {
    const item = document.createElement("li");
    item.dataset.index = String(index);
    item.dataset.kind = entry.kind;
    item.dataset.offset = String(entry.offset_s);
    if (entry.kind === "chat" || entry.kind === "bot") item.dataset.who = entry.who ?? "";
    if (isLine(entry)) item.dataset.line = "true";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "entry";
    const at = document.createElement("span");
    at.className = "at";
    at.textContent = clock(entry.offset_s);
    const [who, what] = describe(entry);
    const whoNode = document.createElement("span");
    whoNode.className = "who";
    whoNode.textContent = who;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = what;
    button.append(at, whoNode, text);
    button.addEventListener("click", () => player?.seek(entry.offset_s));
    item.append(button);
    list.append(item);
  });
  $("r-source").textContent = t(replay.source === "timeline" ? "replay.source_timeline" : "replay.source_database");
}

let currentIndex = -1;
let chatOnly = false;

/** Show every entry, or only what was said (chat and the assistant's lines). */
function showOnly(lines) {
  chatOnly = lines;
  $("entries").classList.toggle("lines-only", lines);
  $("show-all").setAttribute("aria-pressed", String(!lines));
  $("show-chat").setAttribute("aria-pressed", String(lines));
  currentIndex = -2; // the highlighted line may now be hidden: choose again
  if (player) follow(player.t);
}

function follow(at) {
  const entries = replay.entries;
  let index = -1;
  for (let i = 0; i < entries.length; i += 1) {
    if (entries[i].offset_s > at + 0.05) break;
    if (!chatOnly || isLine(entries[i])) index = i;
  }
  if (index === currentIndex) return;
  const list = $("entries");
  list.querySelector("li.current")?.classList.remove("current");
  list.querySelector("li[aria-current]")?.removeAttribute("aria-current");
  currentIndex = index;
  const item = list.querySelector(`li[data-index="${index}"]`);
  if (!item) return;
  item.classList.add("current");
  item.setAttribute("aria-current", "true");
  // Keep the line in view inside the list, without moving the page.
  const top = item.offsetTop; // the list is the items' offset parent (position: relative)
  if (top < list.scrollTop || top + item.offsetHeight > list.scrollTop + list.clientHeight) {
    list.scrollTop = Math.max(0, top - list.clientHeight / 3);
  }
}

// ------------------------------------------------------------------ the status of the recording

function badge(text, kind) {
  const node = document.createElement("span");
  node.className = `badge ${kind ?? ""}`.trim();
  node.textContent = text;
  return node;
}

function renderHead() {
  $("r-customer").textContent = detail.customer.name;
  const advisors = detail.advisors.map((a) => a.name).join(", ");
  const parts = [
    t("replay.started", { time: dateTime(detail.started_at) }),
    duration(detail.duration_s),
    advisors ? t("replay.advisors", { names: advisors }) : t("replay.no_advisor"),
  ];
  if (detail.topic) parts.push(t("replay.topic", { topic: named("topic.", detail.topic) }) + (detail.intent ? ` · ${t("replay.intent", { intent: named("intent.", detail.intent) })}` : ""));
  $("r-meta").textContent = parts.join(" · ");
  const badges = $("r-badges");
  badges.replaceChildren(
    ...detail.channels.map((c) => badge(t(`channel.${c}`), `channel ${c}`)),
    badge(t(`lang.${detail.language}`), "language"),
    ...(detail.vip ? [badge(t("vip"), "vip")] : []),
    badge(t(`outcome.${outcomeOf(detail)}`), `outcome ${outcomeOf(detail)}`),
  );
  const id = document.createElement("code");
  id.className = "contact-id";
  id.textContent = detail.id;
  badges.append(id);
}

function outcomeOf(contact) {
  if (contact.state === "abandoned") return "abandoned";
  if ((contact.state === "ended" || contact.state === "wrap_up") && contact.advisors.length) return "served";
  if (contact.state === "ended") return "bot";
  return "live";
}

function renderStatus() {
  const recording = detail.recording;
  const check = detail.check;
  const seal = $("r-seal");
  seal.replaceChildren(
    recording
      ? badge(t("replay.sealed", { time: dateTime(recording.sealed_at), status: named("status.", recording.status), seq: recording.seq }), "sealed")
      : badge(t("replay.not_sealed"), "verify unsealed"),
  );
  const verify = $("r-verify");
  let state = "unsealed";
  let text = t("verify.unsealed");
  if (recording && !check) [state, text] = ["unchecked", t("replay.unchecked")];
  else if (check?.ok) [state, text] = ["verified", t("replay.verified", { time: dateTimeSeconds(check.checked_at) })];
  else if (check) [state, text] = ["failed", t("replay.failed", { time: dateTimeSeconds(check.checked_at), count: check.problems.length })];
  verify.replaceChildren(badge(text, `verify ${state}`));
  verify.dataset.state = state;
  $("r-recheck").disabled = !recording;
  const hold = $("r-hold");
  hold.dataset.held = String(Boolean(recording?.held));
  if (recording?.held) {
    const who = recording.held_by_name ?? nameOf(recording.held_by);
    hold.replaceChildren(badge(t("replay.held", { time: dateTime(recording.held_at), who, reason: recording.hold_reason ?? "" }), "held"));
  } else {
    hold.textContent = recording ? t("replay.not_held", { time: dateTime(recording.retain_until) }) : "—";
  }
  const toggle = $("r-hold-toggle");
  toggle.disabled = !recording;
  holdWanted = !recording?.held;
  toggle.textContent = t(holdWanted ? "replay.hold_set" : "replay.hold_clear");
  $("r-export").disabled = !recording;
  renderProblems();
}

function renderProblems() {
  const list = $("proof-problems");
  const problems = detail.check && !detail.check.ok ? detail.check.problems : [];
  list.replaceChildren(...problems.map((p) => Object.assign(document.createElement("li"), { textContent: p })));
  list.classList.toggle("hidden", !problems.length);
}

function renderFiles() {
  const body = $("files");
  body.replaceChildren();
  const hashes = new Map((manifest?.manifest?.files ?? []).map((f) => [f.name, f]));
  const tracks = new Map(replay.tracks.map((tr) => [tr.name, tr]));
  for (const file of detail.files) {
    const row = body.insertRow();
    const track = tracks.get(file.name);
    const listed = hashes.get(file.name);
    row.insertCell().textContent = file.name;
    row.insertCell().textContent = track ? `${named("party.", track.party)} · ${t(`kind.${track.kind}`)}` : "—";
    const starts = row.insertCell();
    starts.className = "num";
    starts.textContent = track?.offset_s != null ? clockTenths(track.offset_s) : "—";
    const length = row.insertCell();
    length.className = "num";
    length.textContent = track?.duration_s ? duration(track.duration_s) : "—";
    const bytes = row.insertCell();
    bytes.className = "num";
    bytes.textContent = size(file.size);
    const sha = row.insertCell();
    sha.className = "hash";
    const digest = file.name === "manifest.json" ? manifest?.manifest_sha256 : listed?.sha256;
    sha.textContent = digest ? `${digest.slice(0, 16)}…` : "—";
    if (digest) sha.title = digest;
  }
  const recording = detail.recording;
  const summary = [];
  if (recording) {
    summary.push(t("replay.entry_hash", { seq: recording.seq, hash: `${recording.entry_hash.slice(0, 16)}…` }));
    summary.push(t(manifest?.matches_ledger ? "replay.manifest_ok" : "replay.manifest_bad"));
    summary.push(t("replay.retain", { time: dateTime(recording.retain_until) }));
  } else {
    summary.push(t("replay.not_sealed"));
  }
  $("proof-summary").textContent = summary.join(" · ");
  const unplaced = replay.tracks.filter((tr) => tr.offset_s === null);
  $("unplaced").classList.toggle("hidden", !unplaced.length);
  $("unplaced").textContent = unplaced.map((tr) => t("replay.unplaced", { name: tr.name })).join(" ");
}

async function recheck() {
  const button = $("r-recheck");
  button.disabled = true;
  button.textContent = t("replay.checking");
  $("r-verify").dataset.state = "checking";
  try {
    detail.check = await api(`${base}/verify`, { method: "POST" });
    renderStatus();
  } catch (err) {
    showError(err);
  } finally {
    button.textContent = t("replay.recheck");
    button.disabled = !detail.recording;
  }
}

function openHoldForm() {
  const form = $("hold-form");
  form.classList.remove("hidden");
  $("hold-label").textContent = t(holdWanted ? "replay.hold_reason" : "replay.release_reason");
  $("hold-reason").value = holdWanted ? currentCase()?.reason ?? "" : "";
  $("hold-error").classList.add("hidden");
  $("hold-reason").focus();
}

async function submitHold(event) {
  event.preventDefault();
  try {
    const reply = await api(`${base}/hold`, {
      method: "POST",
      body: { held: holdWanted, reason: $("hold-reason").value },
    });
    detail.recording = reply.recording;
    $("hold-form").classList.add("hidden");
    renderStatus();
  } catch (err) {
    $("hold-error").textContent = err.message;
    $("hold-error").classList.remove("hidden");
  }
}

function renderExport() {
  const result = $("r-export-result");
  if (!lastExport) return;
  const link = Object.assign(document.createElement("a"), {
    href: withGrant(lastExport.url),
    textContent: t("replay.download"),
    className: "download",
    title: lastExport.sha256,
  });
  const text = document.createElement("span");
  text.textContent = t("replay.exported", { size: size(lastExport.size), sha: `${lastExport.sha256.slice(0, 12)}…` });
  result.replaceChildren(text, link);
  result.dataset.sha256 = lastExport.sha256;
}

async function exportContact() {
  const button = $("r-export");
  const result = $("r-export-result");
  button.disabled = true;
  result.textContent = t("replay.exporting");
  try {
    lastExport = await api(`${base}/exports`, { method: "POST" });
    renderExport();
  } catch (err) {
    result.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

function renderAccess() {
  const table = $("access");
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const row of lastAccess?.rows ?? []) {
    const tr = body.insertRow();
    tr.insertCell().textContent = dateTimeSeconds(row.at);
    tr.insertCell().textContent = row.actor_name;
    tr.insertCell().textContent = t(`action.${row.action}`);
    tr.insertCell().textContent = row.reason ?? "";
    tr.insertCell().textContent = row.address ?? "";
  }
  table.classList.toggle("hidden", !lastAccess);
}

async function loadAccess() {
  try {
    lastAccess = await api("/api/compliance/audit", { params: { contact: contactId, per_page: 100 } });
    renderAccess();
  } catch (err) {
    showError(err);
  }
}

function showError(err) {
  const box = $("replay-error");
  box.textContent = t("error.load", { message: err.message });
  box.classList.remove("hidden");
}

// ------------------------------------------------------------------ start

function wirePlayer() {
  const input = $("seek-input");
  const playButton = $("play");
  let dragging = false;
  input.addEventListener("input", () => {
    dragging = true;
    player.seek(Number(input.value));
  });
  input.addEventListener("change", () => {
    dragging = false;
  });
  playButton.addEventListener("click", () => player.toggle());
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return;
    if (event.code === "Space") {
      event.preventDefault();
      player.toggle();
    }
  });
  player.on((p) => {
    $("clock").textContent = `${clock(p.t)} / ${clock(p.total)}`;
    if (!dragging) input.value = String(p.t);
    $("playhead").style.left = `${(p.t / p.total) * 100}%`;
    playButton.dataset.state = p.playing ? "playing" : "paused";
    playButton.setAttribute("aria-label", t(p.playing ? "replay.pause" : "replay.play"));
    document.body.dataset.replayTime = p.t.toFixed(2);
    follow(p.t);
  });
}

async function ready() {
  $("back").href = sessionStorage.getItem("cc.compliance.last-search") ?? "/compliance";
  try {
    await cover(contactId);
    [detail, replay] = await Promise.all([api(base), api(`${base}/timeline`)]);
    manifest = detail.recording ? await api(`${base}/manifest`) : null;
  } catch (err) {
    $("replay-status").classList.add("hidden");
    showError(err);
    return;
  }
  $("replay-status").classList.add("hidden");
  renderHead();
  renderStatus();
  if (!player) {
    player = new Player(replay, $("stage"));
    wirePlayer();
    drawLanes(replay);
  }
  renderEntries();
  renderFiles();
  captions();
  player.seek(0);
  document.body.dataset.replayReady = "true";
}

$("r-recheck").addEventListener("click", recheck);
$("r-hold-toggle").addEventListener("click", openHoldForm);
$("hold-cancel").addEventListener("click", () => $("hold-form").classList.add("hidden"));
$("hold-form").addEventListener("submit", submitHold);
$("r-export").addEventListener("click", exportContact);
$("load-access").addEventListener("click", loadAccess);
$("show-all").addEventListener("click", () => showOnly(false));
$("show-chat").addEventListener("click", () => showOnly(true));
document.addEventListener("languagechange", () => {
  if (!detail) return;
  renderHead();
  renderStatus();
  renderEntries();
  renderFiles();
  captions();
  renderExport();
  renderAccess();
  currentIndex = -1;
  if (player) {
    player.placeholders();
    follow(player.t);
  }
});

mountLanguage($("lang"));
apply(document);
mountCase(ready);
