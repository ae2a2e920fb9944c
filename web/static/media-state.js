// What each party's media is like: the local devices (missing, refused, muted, camera off), the
// connection's quality from getStats (packet loss, round-trip time, video frames decoded), and
// a live audio level per party (WebAudio AnalyserNode). Used by call-controls.js.

import { t } from "./i18n.js";

/** Loss above this share of inbound packets, or a round trip above RTT_POOR_MS, is "poor". */
const LOSS_POOR_PCT = 5;
const RTT_POOR_MS = 400;

let audioContext = null;

/** One AudioContext for the page (browsers limit them); resumed on the next click if the
 * autoplay policy started it suspended. */
function sharedAudioContext() {
  if (audioContext) return audioContext;
  const Context = window.AudioContext ?? window.webkitAudioContext;
  if (!Context) return null;
  audioContext = new Context();
  if (audioContext.state === "suspended") {
    const resume = () => audioContext.resume().catch(() => {});
    document.addEventListener("click", resume, { once: true, capture: true });
    resume();
  }
  return audioContext;
}

/** A live level (0..1) of a stream's audio shown on a `<meter>`; `attach()` follows a new stream. */
export class LevelMeter {
  constructor(meter) {
    this.meter = meter;
    this.stream = null;
    this.source = null;
    this.analyser = null;
    this.samples = null;
    this.trackId = null;
  }

  /** Listen to `stream`'s (first) audio track, if it is not the one already heard. */
  attach(stream) {
    const track = stream?.getAudioTracks()[0] ?? null;
    if ((track?.id ?? null) === this.trackId) return;
    this.detach();
    if (!track) return;
    const context = sharedAudioContext();
    if (!context) return;
    this.trackId = track.id;
    // A stream of its own: the analyser follows this track even if the page's stream changes.
    this.source = context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 512;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser); // not to the speakers: the <video> element plays it
  }

  /** Read the level now (root mean square of the last samples, scaled so speech fills it). */
  sample() {
    if (!this.analyser) {
      this.meter.value = 0;
      return 0;
    }
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const v of this.samples) sum += v * v;
    const level = Math.min(1, Math.sqrt(sum / this.samples.length) * 4);
    this.meter.value = level;
    return level;
  }

  detach() {
    this.source?.disconnect();
    this.source = null;
    this.analyser = null;
    this.trackId = null;
    this.meter.value = 0;
  }
}

/** Packet loss, round-trip time and frames decoded since the last call, from `pc.getStats()`. */
export class ConnectionStats {
  constructor() {
    this.last = null;
    this.framesDecoded = 0;
  }

  async read(pc) {
    const report = await pc.getStats();
    let lost = 0;
    let received = 0;
    let frames = 0;
    let rtt = null;
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp") {
        lost += entry.packetsLost ?? 0;
        received += entry.packetsReceived ?? 0;
        if (entry.kind === "video") frames += entry.framesDecoded ?? 0;
      } else if (entry.type === "candidate-pair" && entry.nominated && entry.currentRoundTripTime != null) {
        rtt = entry.currentRoundTripTime * 1000;
      }
    });
    const previous = this.last ?? { lost: 0, received: 0, frames: 0 };
    const dLost = Math.max(0, lost - previous.lost);
    const dReceived = Math.max(0, received - previous.received);
    const framesMoved = frames > previous.frames;
    this.last = { lost, received, frames };
    this.framesDecoded = frames;
    const lossPct = dLost + dReceived > 0 ? (100 * dLost) / (dLost + dReceived) : 0;
    return { lossPct, rttMs: rtt, framesDecoded: frames, framesMoved, packetsMoved: dReceived > 0 };
  }
}

/** "good" or "poor" from one reading; `expectVideo` if the other side's video should be moving. */
export function quality(reading, { expectVideo }) {
  if (!reading) return "unknown";
  if (reading.lossPct > LOSS_POOR_PCT) return "poor";
  if (reading.rttMs != null && reading.rttMs > RTT_POOR_MS) return "poor";
  if (!reading.packetsMoved) return "poor";
  if (expectVideo && !reading.framesMoved) return "poor";
  return "good";
}

/** The local media state to report: microphone, camera and connection. */
export function localState(link, connection) {
  const devices = link?.devices ?? { microphone: "missing", camera: "none" };
  let microphone = devices.microphone;
  if (microphone === "on" && link.muted) microphone = "muted";
  let camera = link?.video ? devices.camera : "none";
  if (camera === "on" && link.cameraOff) camera = "off";
  return { microphone, camera, connection };
}

/** What to tell this person about the other party's media (`who` is their i18n name key). */
export function describeRemote(state, whoKey) {
  if (!state) return "";
  const who = t(whoKey);
  const parts = [];
  const mic = { muted: "calls.peer_muted", missing: "calls.peer_no_mic", denied: "calls.peer_mic_denied" }[state.microphone];
  if (mic) parts.push(t(mic, { who }));
  const camera = { off: "calls.peer_camera_off", missing: "calls.peer_no_camera", denied: "calls.peer_camera_denied" }[state.camera];
  if (camera) parts.push(t(camera, { who }));
  if (state.connection === "poor") parts.push(t("calls.peer_poor", { who, detail: statsText(state) }));
  return parts.join(" ");
}

/** What to tell this person about their own media. */
export function describeLocal(state) {
  const parts = [];
  const mic = { muted: "calls.you_muted", missing: "calls.you_no_mic", denied: "calls.you_mic_denied" }[state.microphone];
  if (mic) parts.push(t(mic));
  const camera = { off: "calls.you_camera_off", missing: "calls.you_no_camera", denied: "calls.you_camera_denied" }[state.camera];
  if (camera) parts.push(t(camera));
  if (state.connection === "poor") parts.push(t("calls.you_poor"));
  return parts.join(" ");
}

function statsText(state) {
  const bits = [];
  if (state.loss_pct != null && state.loss_pct > 0) bits.push(t("calls.loss", { pct: Math.round(state.loss_pct) }));
  if (state.rtt_ms != null) bits.push(t("calls.rtt", { ms: Math.round(state.rtt_ms) }));
  return bits.join(", ");
}
