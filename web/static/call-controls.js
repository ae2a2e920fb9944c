// The call controls of one contact, the same on the customer page and in the advisor console:
// mute, camera off, add voice or video (both parties must agree: session.upgrade), drop video
// or the call (session.downgrade, either party alone), what the other party's media is like
// (media.state both ways) and a live sound level for each party.

import { t } from "./i18n.js";
import { ConnectionStats, LevelMeter, describeLocal, describeRemote, localState, quality } from "./media-state.js";
import { errorText } from "./notices.js";

const METER_EVERY_MS = 100;
const STATS_EVERY_TICKS = 15; // getStats every 1.5 s
const RANK = { text: 0, voice: 1, video: 2 };

function richest(channels) {
  return (channels ?? []).reduce((best, c) => (RANK[c] > RANK[best] ? c : best), "text");
}

function button(cls, key, extra = {}) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = `secondary ${cls}`;
  node.dataset.i18n = key;
  node.textContent = t(key);
  Object.assign(node.dataset, extra);
  return node;
}

export class CallControls {
  /**
   * @param {object} options
   * @param {HTMLElement} options.box the call's `.media` box (the controls go right after it)
   * @param {import("./media.js").CallView} options.call
   * @param {import("./ws.js").Signalling} options.signalling the main signalling socket
   * @param {"customer"|"advisor"} options.party who uses this page
   * @param {() => string|null} options.contactId
   * @param {(text: string, kind?: string) => void} options.notice shows a line to this person
   */
  constructor({ box, call, signalling, party, contactId, notice }) {
    this.box = box;
    this.call = call;
    this.signalling = signalling;
    this.party = party;
    this.contactId = contactId;
    this.notice = notice;
    this.otherKey = party === "customer" ? "calls.who_advisor" : "calls.who_customer";
    this.otherName = party === "customer" ? "chat.sender.advisor" : "chat.sender.customer";
    this.state = null;
    this.channels = [];
    this.asked = null; // the channel this person asked for, until agreed
    this.offered = null; // the channel the other party asks for
    this.sent = null; // the media.state last sent (JSON)
    this.remoteState = null;
    this.stats = new ConnectionStats();
    this.reading = null;
    this.statsLink = null; // the link whose counts `stats` holds
    this.ticks = 0;
    this._build();
    this._offs = [
      signalling.on("session.upgrade", (m) => this._onUpgradeAsked(m)),
      signalling.on("session.downgrade", (m) => this._onDowngraded(m)),
      signalling.on("session.upgrade_declined", (m) => this._onDeclined(m)),
      signalling.on("media.state", (m) => this._onRemoteState(m)),
    ];
    this._timer = setInterval(() => this._tick(), METER_EVERY_MS);
  }

  _build() {
    const root = document.createElement("div");
    root.className = "call-controls hidden";
    root.setAttribute("role", "group");
    root.setAttribute("aria-label", t("calls.controls"));

    const levels = document.createElement("div");
    levels.className = "levels";
    const meter = (cls, key) => {
      const label = document.createElement("label");
      label.className = cls;
      const text = document.createElement("span");
      text.textContent = t(key);
      const node = document.createElement("meter");
      node.min = 0;
      node.max = 1;
      node.value = 0;
      label.append(text, node);
      levels.append(label);
      return new LevelMeter(node);
    };
    this.localMeter = meter("level-local", "calls.level_you");
    this.remoteMeter = meter("level-remote", this.otherName);

    const buttons = document.createElement("div");
    buttons.className = "buttons";
    this.buttons = {
      mute: button("cc-mute", "calls.mute"),
      camera: button("cc-camera", "calls.camera_off"),
      voice: button("cc-up", "calls.add_voice", { channel: "voice" }),
      video: button("cc-up", "calls.add_video", { channel: "video" }),
      toVoice: button("cc-down", "calls.video_off", { to: "voice" }),
      toText: button("cc-down cc-hangup", "calls.hang_up", { to: "text" }),
    };
    this.buttons.mute.setAttribute("aria-pressed", "false");
    this.buttons.camera.setAttribute("aria-pressed", "false");
    buttons.append(...Object.values(this.buttons));

    this.ask = document.createElement("p");
    this.ask.className = "cc-ask hidden";
    this.askText = document.createElement("span");
    this.accept = button("cc-accept", "calls.agree");
    this.accept.classList.remove("secondary");
    this.decline = button("cc-decline", "calls.not_now");
    this.ask.append(this.askText, " ", this.accept, " ", this.decline);

    this.peerLine = document.createElement("p");
    this.peerLine.className = "cc-peer hint";
    this.peerLine.setAttribute("role", "status");
    this.selfLine = document.createElement("p");
    this.selfLine.className = "cc-self hint";

    root.append(levels, buttons, this.ask, this.peerLine, this.selfLine);
    this.box.after(root);
    this.root = root;

    this.buttons.mute.addEventListener("click", () => this._toggleMute());
    this.buttons.camera.addEventListener("click", () => this._toggleCamera());
    for (const node of [this.buttons.voice, this.buttons.video]) {
      node.addEventListener("click", () => this._upgrade(node.dataset.channel));
    }
    for (const node of [this.buttons.toVoice, this.buttons.toText]) {
      node.addEventListener("click", () => this._downgrade(node.dataset.to));
    }
    this.accept.addEventListener("click", () => this._upgrade(this.offered));
    this.decline.addEventListener("click", () => this._decline());
  }

  /** The contact's state and channels changed (a session.state): show what fits. */
  update(state, channels) {
    const before = richest(this.channels);
    this.state = state;
    this.channels = channels ?? [];
    const now = richest(this.channels);
    if (RANK[now] > RANK[before] || state !== "connected") {
      this.asked = null;
      this.offered = null;
    }
    if (now === "text" || state !== "connected") {
      this.remoteState = null;
      this.sent = null;
      this.stats = new ConnectionStats();
    }
    this._render();
  }

  _render() {
    const connected = this.state === "connected";
    const medium = richest(this.channels);
    const link = this.call.link;
    this.root.classList.toggle("hidden", !connected);
    this.root.dataset.medium = medium;
    const show = (node, on) => node.classList.toggle("hidden", !on);
    show(this.root.querySelector(".levels"), medium !== "text");
    show(this.buttons.mute, medium !== "text");
    show(this.buttons.camera, medium === "video" && link?.devices.camera === "on");
    show(this.buttons.voice, medium === "text");
    show(this.buttons.video, medium !== "video");
    show(this.buttons.toVoice, medium === "video");
    show(this.buttons.toText, medium !== "text");
    const muted = Boolean(link?.muted);
    this.buttons.mute.setAttribute("aria-pressed", String(muted));
    this.buttons.mute.textContent = t(muted ? "calls.unmute" : "calls.mute");
    const off = Boolean(link?.cameraOff);
    this.buttons.camera.setAttribute("aria-pressed", String(off));
    this.buttons.camera.textContent = t(off ? "calls.camera_on" : "calls.camera_off");
    for (const node of [this.buttons.voice, this.buttons.video]) {
      node.disabled = this.asked === node.dataset.channel;
    }
    const who = t(this.otherKey);
    if (this.offered && connected) {
      this.askText.textContent = t(`calls.asks_${this.offered}`, { who });
      show(this.accept, true);
      show(this.decline, true);
      show(this.ask, true);
    } else if (this.asked && connected) {
      this.askText.textContent = t("calls.waiting_agree", { who, medium: t(`channel.${this.asked}`) });
      show(this.accept, false);
      show(this.decline, false);
      show(this.ask, true);
    } else {
      show(this.ask, false);
    }
    this.peerLine.textContent = medium === "text" ? "" : describeRemote(this.remoteState, this.otherKey);
    this.box.dataset.peerCamera = this.remoteState?.camera ?? "";
    // On the other party's black tile: why there is no picture.
    const tile = this.box.querySelector("figure");
    const note = { off: "calls.tile_off", missing: "calls.tile_missing", denied: "calls.tile_denied" }[this.remoteState?.camera];
    if (tile && note && medium === "video") tile.dataset.note = t(note);
    else if (tile) delete tile.dataset.note;
    this.box.dataset.peerMicrophone = this.remoteState?.microphone ?? "";
  }

  async _upgrade(channel) {
    const contactId = this.contactId();
    if (!contactId || !channel) return;
    try {
      const { agreed } = await this.signalling.request("session.upgrade", { contact_id: contactId, channel });
      this.offered = null;
      this.asked = agreed ? null : channel;
    } catch (err) {
      this.notice(errorText(err), "error");
    }
    this._render();
  }

  /** "Not now": the other party is told at once and may ask again later. */
  async _decline() {
    const contactId = this.contactId();
    const channel = this.offered;
    this.offered = null;
    this._render();
    if (!contactId || !channel) return;
    try {
      await this.signalling.request("session.upgrade_decline", { contact_id: contactId, channel });
    } catch (err) {
      this.notice(errorText(err), "error");
    }
  }

  _onDeclined(m) {
    if (m.contact_id !== this.contactId() || m.by === this.party) return;
    if (this.asked === m.channel) this.asked = null; // the buttons ask again
    this.notice(t("recovery.peer_declined", { who: t(this.otherKey) }));
    this._render();
  }

  async _downgrade(to) {
    const contactId = this.contactId();
    if (!contactId) return;
    try {
      await this.signalling.request("session.downgrade", { contact_id: contactId, to });
    } catch (err) {
      this.notice(errorText(err), "error");
    }
  }

  _toggleMute() {
    const link = this.call.link;
    if (!link) return;
    link.setMuted(!link.muted);
    this._render();
    this._report();
  }

  _toggleCamera() {
    const link = this.call.link;
    if (!link) return;
    link.setCameraOff(!link.cameraOff);
    this._render();
    this._report();
  }

  _onUpgradeAsked(m) {
    if (m.contact_id !== this.contactId() || m.by === this.party) return;
    this.offered = m.channel;
    this._render();
  }

  _onDowngraded(m) {
    if (m.contact_id !== this.contactId() || m.by === this.party) return;
    this.notice(t(m.to === "text" ? "calls.peer_hung_up" : "calls.peer_video_off", { who: t(this.otherKey) }));
  }

  _onRemoteState(m) {
    if (m.contact_id !== this.contactId() || m.party === this.party) return;
    this.remoteState = m;
    this._render();
  }

  _tick() {
    const link = this.call.link;
    const live = link && !link.closed && this.state === "connected";
    if (!live) {
      this.localMeter.detach();
      this.remoteMeter.detach();
      return;
    }
    if (link !== this.statsLink) {
      // A new link (the call came back after its link was lost): its own counts, from zero.
      this.statsLink = link;
      this.stats = new ConnectionStats();
      this.reading = null;
      delete this.box.dataset.framesDecoded;
    }
    const devices = JSON.stringify(link.devices);
    if (devices !== this.devices) {
      this.devices = devices; // the devices opened (or were refused): show the fitting buttons
      this._render();
    }
    this.localMeter.attach(link.stream);
    this.remoteMeter.attach(link.remote);
    this.localMeter.sample();
    this.remoteMeter.sample();
    this.ticks += 1;
    if (this.ticks % STATS_EVERY_TICKS === 0) this._readStats(link);
  }

  async _readStats(link) {
    if (!link.pc || link.pc.connectionState !== "connected") return;
    try {
      this.reading = await this.stats.read(link.pc);
    } catch {
      return; // closed meanwhile
    }
    this.box.dataset.framesDecoded = String(this.reading.framesDecoded);
    this._report();
  }

  /** Tell the other party when something about this side's media changed. */
  _report() {
    const link = this.call.link;
    const contactId = this.contactId();
    if (!link || !contactId || this.state !== "connected") return;
    const state = localState(link, quality(this.reading, { expectVideo: false }));
    this.selfLine.textContent = describeLocal(state);
    const own = this.box.querySelectorAll("figure")[1];
    const note = { off: "calls.tile_off", missing: "calls.tile_missing", denied: "calls.tile_denied" }[state.camera];
    if (own && note) own.dataset.note = t(note);
    else if (own) delete own.dataset.note;
    this._render();
    const key = JSON.stringify(state);
    if (key === this.sent) return;
    this.sent = key;
    const fields = { contact_id: contactId, ...state };
    if (this.reading) {
      fields.loss_pct = Math.round(this.reading.lossPct * 10) / 10;
      if (this.reading.rttMs != null) fields.rtt_ms = Math.round(this.reading.rttMs);
      fields.frames_decoded = this.reading.framesDecoded;
    }
    this.signalling.request("media.state", fields).catch((err) => {
      this.sent = null; // try again on the next reading
      console.warn("media.state", err);
    });
  }

  /** Stop listening (the contact's panel is gone). */
  dispose() {
    clearInterval(this._timer);
    for (const off of this._offs) off();
    this.localMeter.detach();
    this.remoteMeter.detach();
    this.root.remove();
  }
}
