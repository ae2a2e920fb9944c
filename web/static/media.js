// One RTCPeerConnection with the server (an aiortc peer that answers with complete ICE
// candidates and does not trickle): we gather completely, send the whole offer in `rtc.offer`,
// and apply the `rtc.answer`. Used by the customer page and the advisor console, whose call
// box (both videos and a status line) is a CallView.

import { CallRecovery, linkLost } from "./call-recovery.js";
import { t } from "./i18n.js";
import { errorText } from "./notices.js";

const ICE_GATHER_TIMEOUT_MS = 8000;

/** ICE servers from a `data-ice-servers` attribute: URLs or RTCIceServer objects; `[]` if absent. */
export function iceServersFrom(element) {
  const raw = element?.dataset?.iceServers;
  if (!raw) return [];
  try {
    const parsed = JSON.parse(raw);
    if (!Array.isArray(parsed)) return [];
    return parsed.map((s) => (typeof s === "string" ? { urls: s } : s));
  } catch {
    console.warn("data-ice-servers is not JSON:", raw);
    return [];
  }
}

function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    // Past the timeout we send what we have: a slow STUN server must not block the call.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** What a refused getUserMedia says about the device: "denied" (by the person or a policy)
 * or "missing" (none, busy, or not usable). */
export function deviceProblem(err) {
  const name = err?.name ?? "";
  return name === "NotAllowedError" || name === "SecurityError" ? "denied" : "missing";
}

/**
 * The local microphone (and camera if `wantVideo`): `{stream, error, microphone, camera}` where
 * each device is "on", "denied" or "missing" (and camera "none" when no video is asked for).
 */
async function localStream(wantVideo) {
  const devices = navigator.mediaDevices;
  if (!devices?.getUserMedia) {
    const camera = wantVideo ? "missing" : "none";
    return { stream: null, error: "no media devices (needs https)", microphone: "missing", camera };
  }
  try {
    const stream = await devices.getUserMedia({ audio: true, video: wantVideo });
    return { stream, microphone: "on", camera: wantVideo ? "on" : "none" };
  } catch (err) {
    if (!wantVideo) return { stream: null, error: err.name || String(err), microphone: deviceProblem(err), camera: "none" };
    try {
      // No camera (or refused): still talk, and still see the other side.
      const stream = await devices.getUserMedia({ audio: true });
      return { stream, error: err.name || String(err), microphone: "on", camera: deviceProblem(err) };
    } catch (err2) {
      try {
        // No microphone, but a camera: still be seen (and read the chat).
        const stream = await devices.getUserMedia({ video: true });
        return { stream, error: err2.name || String(err2), microphone: deviceProblem(err2), camera: "on" };
      } catch {
        return { stream: null, error: err2.name || String(err2), microphone: deviceProblem(err2), camera: deviceProblem(err) };
      }
    }
  }
}

/**
 * The media of one contact.
 *
 * `signalling` is a Signalling (ws.js) on the instance holding the media; `onChange(state,
 * detail)` hears "starting", "local" (with a device error, if any), "connected", "failed",
 * "closed".
 */
export class MediaLink {
  constructor({ signalling, contactId, channels, localEl, remoteEl, iceServers = [], onChange }) {
    this.signalling = signalling;
    this.contactId = contactId;
    this.video = channels.includes("video");
    this.localEl = localEl;
    this.remoteEl = remoteEl;
    this.iceServers = iceServers;
    this.onChange = onChange ?? (() => {});
    this.pc = null;
    this.stream = null;
    this.remote = null;
    this.closed = false;
    /** Each local device: "on", "denied", "missing" (camera also "none": no video asked). */
    this.devices = { microphone: "missing", camera: this.video ? "missing" : "none" };
    this.muted = false;
    this.cameraOff = false;
    this._queue = Promise.resolve(); // renegotiations, one after another
  }

  get active() {
    return this.pc !== null && !["failed", "closed"].includes(this.pc.connectionState);
  }

  async start() {
    this.onChange("starting");
    const { stream, error, microphone, camera } = await localStream(this.video);
    if (this.closed) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    this.stream = stream;
    this.devices = { microphone, camera };
    // A link that replaces a lost one keeps the person's choices.
    this.setMuted(this.muted);
    this.setCameraOff(this.cameraOff);
    this.onChange("local", { error });
    if (stream && this.localEl) this.localEl.srcObject = stream;

    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    const remote = new MediaStream();
    this.remote = remote;
    if (this.remoteEl) this.remoteEl.srcObject = remote;
    pc.addEventListener("track", (event) => {
      remote.addTrack(event.track);
      // Re-assign so that the element notices a track added after it started playing.
      if (this.remoteEl) {
        this.remoteEl.srcObject = remote;
        this.remoteEl.play?.().catch(() => {});
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (["connected", "disconnected", "failed"].includes(state)) this.onChange(state);
    });

    const kinds = this.video ? ["audio", "video"] : ["audio"];
    for (const kind of kinds) {
      const track = stream?.getTracks().find((t) => t.kind === kind);
      if (track) pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
      else pc.addTransceiver(kind, { direction: "recvonly" });
    }
    await this._negotiate();
  }

  /** Offer what the peer connection has now and apply the server's answer. */
  async _negotiate() {
    const pc = this.pc;
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, ICE_GATHER_TIMEOUT_MS);
    if (this.closed) return;

    // The server sends rtc.answer before the ack: listen first.
    const answered = new Promise((resolve) => {
      const off = this.signalling.on("rtc.answer", (message) => {
        if (message.contact_id !== this.contactId) return;
        off();
        resolve(message.sdp);
      });
      this._offAnswer = off;
    });
    try {
      await this.signalling.request("rtc.offer", {
        contact_id: this.contactId,
        sdp: pc.localDescription.sdp,
      });
    } catch (err) {
      this._offAnswer?.();
      throw err;
    }
    const sdp = await answered;
    if (this.closed) return;
    await pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** Add video to the call (camera on, see the other side) or drop it, by renegotiating. */
  setVideo(on) {
    if (on === this.video) return this._queue;
    this.video = on;
    this._queue = this._queue.then(() => (on ? this._addVideo() : this._dropVideo())).catch((err) => {
      console.error("video renegotiation", err);
    });
    return this._queue;
  }

  _videoTransceiver() {
    return this.pc?.getTransceivers().find((t) => (t.receiver.track?.kind ?? t.sender.track?.kind) === "video" && !t.stopped);
  }

  async _addVideo() {
    if (this.closed || !this.pc) return;
    let track = null;
    try {
      const camera = await navigator.mediaDevices.getUserMedia({ video: true });
      track = camera.getVideoTracks()[0];
      this.devices = { ...this.devices, camera: "on" };
    } catch (err) {
      this.devices = { ...this.devices, camera: deviceProblem(err) }; // still see the other side
    }
    if (this.closed) {
      track?.stop();
      return;
    }
    if (track) {
      track.enabled = !this.cameraOff;
      if (!this.stream) this.stream = new MediaStream();
      this.stream.addTrack(track);
      if (this.localEl) this.localEl.srcObject = this.stream;
    }
    const transceiver = this._videoTransceiver();
    if (transceiver) {
      await transceiver.sender.replaceTrack(track);
      transceiver.direction = track ? "sendrecv" : "recvonly";
    } else if (track) {
      this.pc.addTransceiver(track, { direction: "sendrecv", streams: [this.stream] });
    } else {
      this.pc.addTransceiver("video", { direction: "recvonly" });
    }
    this.onChange("video", { on: true });
    await this._negotiate();
  }

  async _dropVideo() {
    if (this.closed || !this.pc) return;
    const transceiver = this._videoTransceiver();
    if (transceiver) {
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
    }
    for (const track of this.stream?.getVideoTracks() ?? []) {
      track.stop();
      this.stream.removeTrack(track);
    }
    for (const track of this.remote?.getVideoTracks() ?? []) this.remote.removeTrack(track);
    this.devices = { ...this.devices, camera: "none" };
    this.onChange("video", { on: false });
    if (transceiver) await this._negotiate();
  }

  /** Mute or unmute the microphone (the track keeps running: unmuting is instant). */
  setMuted(muted) {
    this.muted = muted;
    for (const track of this.stream?.getAudioTracks() ?? []) track.enabled = !muted;
  }

  /** Turn the camera off or on (the other side gets black frames, then a notice). */
  setCameraOff(off) {
    this.cameraOff = off;
    for (const track of this.stream?.getVideoTracks() ?? []) track.enabled = !off;
  }

  stop() {
    if (this.closed) return;
    this.closed = true;
    this._offAnswer?.();
    this.pc?.close();
    this.stream?.getTracks().forEach((t) => t.stop());
    if (this.localEl) this.localEl.srcObject = null;
    if (this.remoteEl) this.remoteEl.srcObject = null;
    this.onChange("closed");
  }
}

/** Whether a contact on these channels has a call. */
export function wantsMedia(channels) {
  return (channels ?? []).includes("voice") || (channels ?? []).includes("video");
}

/**
 * The call of one contact on a page: its box (`.hidden` when there is no call, `.voice` for
 * sound only, `data-state` the link's state), its status line, and the MediaLink.
 *
 * `texts` names the strings (i18n keys) of the status line: starting, local (devices open),
 * noDevice ({error}), connected, failed, startFailed ({error}), voice ({text}: a voice call's
 * status around the others).
 */
export class CallView {
  constructor({ box, status, localEl, remoteEl, iceServers = [], texts }) {
    this.box = box;
    this.status = status;
    this.localEl = localEl;
    this.remoteEl = remoteEl;
    this.iceServers = iceServers;
    this.texts = texts;
    this.link = null;
    this.links = 0;
    this.wanted = null; // {contactId, channels, signalling} of the call while it should be up
    this.recovery = new CallRecovery({
      lost: () => this.wanted !== null && (this.link === null || linkLost(this.link)),
      restart: () => this._open(),
      onChange: (on) => this._recovering(on),
      online: () => this.wanted?.online?.connected !== false,
      onGiveUp: () => {
        this.status.textContent = t("recovery.gave_up");
        this.box.dataset.state = "failed";
      },
    });
  }

  /** A link that is under way or up (not one that failed or was stopped). */
  get live() {
    const link = this.link;
    return link !== null && !link.closed && (link.active || !link.pc);
  }

  /**
   * Start the call unless one is live (or start it again if its link was lost). `signalling`
   * is the Signalling to send rtc.offer on, or a function giving (a promise of) it; `online`
   * the page's Signalling, whose being connected says a new link can be tried (by default
   * `signalling` itself).
   */
  start({ contactId, channels, signalling, online = typeof signalling === "function" ? null : signalling }) {
    const video = channels.includes("video");
    const again = this.wanted?.contactId === contactId;
    this.wanted = { contactId, channels, signalling, online };
    if (this.live && !linkLost(this.link)) {
      // The contact changed medium inside the call: voice <-> video, by renegotiating.
      if (this.link.video !== video) {
        this.box.classList.toggle("voice", !video);
        this.link.setVideo(video);
      }
      return;
    }
    if (again && this.link) {
      // The contact is connected again (a resume) but its call is gone: bring it back now.
      this.recovery.reset();
      this.recovery.attempt();
      return;
    }
    this._open();
  }

  /** A new MediaLink for the wanted call, replacing the current one. */
  _open() {
    const { contactId, channels, signalling } = this.wanted;
    const video = channels.includes("video");
    const previous = this.link;
    previous?.stop();
    this.box.classList.remove("hidden");
    this.box.classList.toggle("voice", !video);
    const link = new MediaLink({
      signalling: null,
      contactId,
      channels,
      localEl: this.localEl,
      remoteEl: this.remoteEl,
      iceServers: this.iceServers,
      onChange: (state, detail) => {
        if (link !== this.link && state !== "closed") return; // a link since replaced
        if (state === "connected") this.recovery.connected();
        else if ((state === "disconnected" || state === "failed") && link === this.link) this.recovery.lost(state);
        // "video": a renegotiation (the connection's state is unchanged): only the wording.
        let text = state === "video" ? this.lastText : this.describe(state, detail);
        if (this.recovery.recovering && state !== "closed") text = t("recovery.reconnecting");
        if (text) this.status.textContent = link.video ? text : t(this.texts.voice, { text });
        if (text && !this.recovery.recovering) this.lastText = text;
        if (state === "video") return;
        this.box.dataset.state = state;
      },
    });
    // A link that replaces a lost one keeps the person's choices.
    link.muted = previous?.muted ?? false;
    link.cameraOff = previous?.cameraOff ?? false;
    this.link = link;
    this.links += 1;
    this.box.dataset.link = String(this.links); // how many links this call has had (1: the first)
    Promise.resolve(typeof signalling === "function" ? signalling() : signalling)
      .then((socket) => {
        link.signalling = socket;
        return link.start();
      })
      .catch((err) => {
        console.warn("media", err);
        if (link !== this.link) return;
        link.stop(); // what it opened (camera, peer connection) goes; a new link starts over
        if (!this.recovery.recovering) this.status.textContent = t(this.texts.startFailed, { error: errorText(err) });
        this.recovery.lost("failed"); // try again, a bounded number of times
      });
  }

  _recovering(on) {
    const text = t("recovery.reconnecting");
    this.box.toggleAttribute("data-recovering", on);
    // Said over the other party's picture too (calls.css), where the person is looking.
    const tile = this.remoteEl?.closest("figure");
    if (on) tile?.setAttribute("data-recovering", text);
    else tile?.removeAttribute("data-recovering");
    if (on) this.status.textContent = this.link?.video === false ? t(this.texts.voice, { text }) : text;
  }

  describe(state, detail) {
    const keys = this.texts;
    if (state === "local") return detail?.error ? t(keys.noDevice, { error: detail.error }) : t(keys.local);
    const key = { starting: keys.starting, connected: keys.connected, failed: keys.failed }[state];
    return key ? t(key) : undefined;
  }

  stop() {
    this.wanted = null;
    this.recovery.cancel();
    this.link?.stop();
    this.link = null;
    this.box.classList.add("hidden");
  }
}
