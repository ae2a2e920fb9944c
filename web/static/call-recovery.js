// Bringing a call back by itself: when the media link of a contact that is still connected is
// lost (its server crashed or restarted, the network dropped), a new link is started, again
// and again with a growing pause, a bounded number of times. A link that merely looks
// disconnected gets a moment to heal first; one that is connected is never touched (a
// WebSocket blip alone does not restart a call).

/** A peer connection in one of these states carries no media. */
const LOST_STATES = new Set(["disconnected", "failed", "closed"]);
/** "disconnected" often heals by itself (a short network loss): wait this long first. */
const DISCONNECTED_GRACE_MS = 3000;
/** The pause before each new attempt (the last one repeats). */
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
/** Attempts in a row before giving up (a resumed contact starts the count again). */
export const MAX_ATTEMPTS = 8;
/** A new link that is not connected by then counts as failed. */
const CONNECT_TIMEOUT_MS = 15000;

/** Whether `link` (a MediaLink) carries no media any more: stopped, or its connection lost. */
export function linkLost(link) {
  return link.closed || (link.pc !== null && LOST_STATES.has(link.pc.connectionState));
}

export class CallRecovery {
  /**
   * @param {object} options
   * @param {() => boolean} options.lost whether the call needs a new link now
   * @param {() => void} options.restart start a new link
   * @param {(recovering: boolean) => void} options.onChange recovering or not any more
   * @param {() => void} options.onGiveUp the attempts are used up
   * @param {() => boolean} [options.online] whether an attempt can work now (the signalling
   *   socket is up): while it is not, attempts wait, uncounted
   */
  constructor({ lost, restart, onChange, onGiveUp, online = () => true }) {
    this.isLost = lost;
    this.online = online;
    this.restart = restart;
    this.onChange = onChange;
    this.onGiveUp = onGiveUp;
    this.attempts = 0;
    this.recovering = false;
    this._retry = null;
    this._watchdog = null;
  }

  /** The link reported `state` ("disconnected", "failed", or "failed" for a start that threw). */
  lost(state) {
    clearTimeout(this._watchdog);
    this._watchdog = null;
    if (this._retry) return; // an attempt is already due
    const delay = state === "disconnected" && !this.recovering
      ? DISCONNECTED_GRACE_MS
      : BACKOFF_MS[Math.min(this.attempts, BACKOFF_MS.length - 1)];
    this._set(true); // the picture froze: say so at once, also while it may still heal
    this._retry = setTimeout(() => {
      this._retry = null;
      if (this.isLost()) this.attempt();
    }, delay);
  }

  /** Start a new link now (counted), unless the attempts are used up. */
  attempt() {
    clearTimeout(this._retry);
    this._retry = null;
    if (!this.online()) {
      // The server is out of reach (it is restarting, say): wait for it without using up the
      // attempts; the contact's resume, once the socket is back, also brings the call back.
      this._set(true);
      this._retry = setTimeout(() => {
        this._retry = null;
        if (this.isLost()) this.attempt();
      }, BACKOFF_MS[1]);
      return;
    }
    if (this.attempts >= MAX_ATTEMPTS) {
      this._set(false);
      this.onGiveUp();
      return;
    }
    this.attempts += 1;
    this._set(true);
    this.restart();
    clearTimeout(this._watchdog);
    this._watchdog = setTimeout(() => {
      this._watchdog = null;
      if (this.recovering) this.lost("failed"); // still not back
    }, CONNECT_TIMEOUT_MS);
  }

  /** The contact came back (a resume): a fresh count of attempts. */
  reset() {
    this.attempts = 0;
  }

  /** The link is connected: the call is back. */
  connected() {
    this.cancel();
  }

  /** Stop trying (the call is over, or back). */
  cancel() {
    clearTimeout(this._retry);
    clearTimeout(this._watchdog);
    this._retry = null;
    this._watchdog = null;
    this.attempts = 0;
    this._set(false);
  }

  _set(recovering) {
    if (recovering === this.recovering) return;
    this.recovering = recovering;
    this.onChange(recovering);
  }
}
