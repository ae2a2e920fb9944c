// A small client of the signalling protocol (contact_center/protocol.py is its one definition).
//
// Frames are {"v":1,"type":...,"id":...}; every request gets `ack {ref, data}` or
// `error {ref, code, message}`: `request()` returns a promise of the ack's data that rejects with
// a RequestError. Pushed messages are emitted by their type. The socket reconnects with backoff;
// a customer's resume token (kept in sessionStorage) takes the contact up again afterwards.

export const RESUME_KEY = "cc.resume_token";
const REQUEST_TIMEOUT_MS = 15000;
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    this._handlers.get(type)?.delete(handler);
  }

  emit(type, payload) {
    for (const handler of [...(this._handlers.get(type) ?? [])]) {
      try {
        handler(payload);
      } catch (err) {
        console.error(`handler of ${type} failed`, err);
      }
    }
  }
}

export class RequestError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "RequestError";
    this.code = code;
    this.detail = message;
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** The WebSocket URL of this page's own server. */
export function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** A single-use token for a socket to another origin, where the cookie is not sent. */
export async function fetchWsToken() {
  const response = await fetch("/api/ws-token", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrfToken() },
  });
  if (!response.ok) throw new Error(`ws token: HTTP ${response.status}`);
  return (await response.json()).token;
}

export const resumeStore = {
  get() {
    try {
      return sessionStorage.getItem(RESUME_KEY);
    } catch {
      return null;
    }
  },
  set(token) {
    try {
      if (token) sessionStorage.setItem(RESUME_KEY, token);
    } catch {
      /* storage refused (private mode): resuming then relies on the cookie alone */
    }
  },
  clear() {
    try {
      sessionStorage.removeItem(RESUME_KEY);
    } catch {
      /* nothing stored */
    }
  },
};

/**
 * One signalling connection.
 *
 * Events: "open" (after the welcome, with it), "close" ({code, reason, willRetry}),
 * "error" (an error frame that answers no request), "resumed" / "resume-failed", and one event
 * per pushed message type ("session.state", "chat.message", "offer", ...).
 */
export class Signalling extends Emitter {
  /**
   * @param {object} options
   * @param {string} [options.url] WebSocket URL (this server's /ws by default)
   * @param {() => Promise<string|null>} [options.token] a hello token (for another origin)
   * @param {boolean} [options.resume] send session.resume with the stored token on reconnect
   * @param {boolean} [options.reconnect] reconnect when the socket drops (default true)
   * @param {() => Promise<object>} [options.hello] more hello fields for a client without the
   *   cookie (`bank_token`, `guest`); after the first hello its `rejoin_token` is used instead
   */
  constructor({ url = defaultUrl(), token = null, resume = false, reconnect = true, hello = null } = {}) {
    super();
    this.url = url;
    this._token = token;
    this._hello = hello;
    this._rejoin = null;
    this._resume = resume;
    this._reconnect = reconnect;
    this._ws = null;
    this._ids = 0;
    // request ids are the server's idempotency keys for this person: unique across sockets
    this._idPrefix = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    this._pending = new Map();
    this._attempt = 0;
    this._closed = false;
    this._timer = null;
    this.welcome = null;
    this.connected = false;
    this._opened = null;
  }

  /** Connect (once); resolves with the welcome message of the first connection. */
  connect() {
    if (!this._opened) {
      this._opened = new Promise((resolve, reject) => {
        this._firstOpen = { resolve, reject };
      });
      this._open();
    }
    return this._opened;
  }

  /** Close for good (no reconnect). */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._ws?.close(1000, "bye");
  }

  /** Send a request; resolves with the ack's data, rejects with a RequestError. */
  request(type, fields = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RequestError("disconnected", "not connected to the server"));
    }
    return this._send(type, fields, timeout);
  }

  _send(type, fields, timeout) {
    const id = `${this._idPrefix}-${++this._ids}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RequestError("timeout", `no answer to ${type}`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      this._ws.send(JSON.stringify({ v: 1, type, id, ...fields }));
    });
  }

  async _open() {
    let hello = {};
    if (this._rejoin) {
      // Single use, so it goes once it is sent (in _greet): a server that is down (restarting)
      // never saw it, and it still brings this client back as the same person.
      hello = { token: this._rejoin };
    } else if (this._hello) {
      try {
        hello = await this._hello();
      } catch (err) {
        this._failed(err);
        return;
      }
    } else if (this._token) {
      try {
        hello = { token: await this._token() };
      } catch (err) {
        this._failed(err);
        return;
      }
    }
    const ws = new WebSocket(this.url);
    this._ws = ws;
    ws.addEventListener("open", () => this._greet(ws, hello));
    ws.addEventListener("message", (event) => this._receive(event.data));
    ws.addEventListener("close", (event) => this._dropped(ws, event));
  }

  async _greet(ws, hello) {
    let offWelcome = () => {};
    const welcomed = new Promise((resolve) => {
      offWelcome = this.on("welcome", (message) => {
        offWelcome();
        resolve(message);
      });
    });
    if (hello.token && hello.token === this._rejoin) this._rejoin = null; // the answer brings a new one
    try {
      const ack = await this._send("hello", hello, REQUEST_TIMEOUT_MS);
      if (ack.rejoin_token) this._rejoin = ack.rejoin_token;
      this.welcome = await welcomed;
    } catch (err) {
      offWelcome();
      // A refused hello (signed out, expired token) will not get better by retrying; anything
      // else (a timeout, a drop) is retried by the close handler.
      if (err.code === "unauthenticated" || err.code === "forbidden") {
        this._closed = true;
        this._failed(err);
      }
      ws.close(1000, "hello failed");
      return;
    }
    const again = Boolean(this._hadOpen);
    this._attempt = 0;
    this.connected = true;
    this._hadOpen = true;
    this.emit("open", { welcome: this.welcome, reconnected: again });
    if (this._firstOpen) {
      this._firstOpen.resolve(this.welcome);
      this._firstOpen = null;
    }
    if (again && this._resume) await this._resumeStored();
  }

  async _resumeStored() {
    const token = resumeStore.get();
    if (!token) return;
    try {
      const data = await this.request("session.resume", { resume_token: token });
      this.emit("resumed", data);
    } catch (err) {
      if (err.code === "resume_expired" || err.code === "invalid_state" || err.code === "forbidden") {
        resumeStore.clear();
      }
      this.emit("resume-failed", err);
    }
  }

  _receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      console.warn("not JSON from the server", raw);
      return;
    }
    const pending = message.ref ? this._pending.get(message.ref) : undefined;
    if (pending && (message.type === "ack" || message.type === "error")) {
      this._pending.delete(message.ref);
      clearTimeout(pending.timer);
      if (message.type === "ack") pending.resolve(message.data ?? {});
      else pending.reject(new RequestError(message.code, message.message));
      return;
    }
    if (message.type === "error") {
      this.emit("error", new RequestError(message.code, message.message));
      return;
    }
    this.emit(message.type, message);
    this.emit("message", message);
  }

  _dropped(ws, event) {
    if (ws !== this._ws) return;
    this.connected = false;
    for (const [, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new RequestError("disconnected", "the connection dropped"));
    }
    this._pending.clear();
    const willRetry = this._reconnect && !this._closed;
    this.emit("close", { code: event.code, reason: event.reason, willRetry });
    if (!willRetry) return;
    const delay = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
    this._attempt += 1;
    // jitter, so that a restarted server is not hit by every client at the same instant
    this._timer = setTimeout(() => this._open(), delay * (0.75 + Math.random() / 2));
  }

  _failed(err) {
    this.emit("close", { code: 0, reason: String(err?.message ?? err), willRetry: false });
    if (this._firstOpen) {
      this._firstOpen.reject(err);
      this._firstOpen = null;
    }
  }
}
