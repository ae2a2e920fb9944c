// The customer page: start a contact, follow its state and queue position, chat, talk (to the
// voice bot first, when the contact is a voice or video one).

import { CallControls } from "./call-controls.js";
import { ChatPane, wireComposer } from "./chat.js";
import { cookielessHello, embedOptions, embedded, tellParent } from "./embedded.js";
import { LeaveMessage } from "./leave-message.js";
import { has, initLanguage, lang, setLanguage, t } from "./i18n.js";
import { CallView, iceServersFrom, wantsMedia } from "./media.js";
import { errorText, noticeOn, showNotice } from "./notices.js";
import { VoicePanel } from "./voice.js";
import { Signalling, resumeStore } from "./ws.js";

const LIVE = new Set(["bot", "queued", "offered", "connected"]);
const OVER = new Set(["wrap_up", "ended", "abandoned"]);
/** The contact's language (the #language choice) for each language of the page. */
const CONTACT_LANGUAGE = { en: "en", "zh-Hant": "zh", "zh-Hans": "zh", yue: "yue" };

const $ = (id) => document.getElementById(id);
const el = {
  start: $("start"),
  form: $("start-form"),
  startError: $("start-error"),
  language: $("language"),
  conversation: $("conversation"),
  notice: $("notice"),
  state: $("state"),
  queue: $("queue"),
  media: $("media"),
  mediaStatus: $("media-status"),
  remote: $("remote"),
  remoteName: $("remote-name"),
  local: $("local"),
  voice: $("voice"),
  voiceState: $("voice-state"),
  voiceCaption: $("voice-caption"),
  voiceLabel: $("voice-caption-label"),
  voiceText: $("voice-caption-text"),
  voiceConfidence: $("voice-caption-confidence"),
  chat: $("chat"),
  typing: $("typing"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  end: $("end"),
  again: $("again"),
  who: $("embedded-who"),
};

const view = {
  contactId: null,
  state: null,
  channels: [],
  queue: null,
  advisorName: null,
};

const notice = noticeOn(el.notice);
const chat = new ChatPane({ list: el.chat, typing: el.typing, self: "customer", peer: "advisor" });
const voice = new VoicePanel({
  box: el.voice,
  state: el.voiceState,
  caption: el.voiceCaption,
  label: el.voiceLabel,
  text: el.voiceText,
  confidence: el.voiceConfidence,
});
const call = new CallView({
  box: el.media,
  status: el.mediaStatus,
  localEl: el.local,
  remoteEl: el.remote,
  iceServers: iceServersFrom(el.media),
  texts: {
    starting: "customer.media_starting",
    local: "customer.media_starting",
    noDevice: "customer.media_no_device",
    connected: "customer.media_connected",
    failed: "customer.media_failed",
    startFailed: "customer.media_failed",
    voice: "customer.media_voice",
  },
});

/** The page in `code`'s language (a page language or a contact's: en, zh, yue). */
function switchLanguage(code) {
  // Mandarin is read in either script: keep Traditional if that is what the page shows.
  setLanguage(code === "zh" && lang() === "zh-Hant" ? "zh-Hant" : code);
  renderState();
  renderQueue();
  voice.render();
}

// ------------------------------------------------------------------ state

function renderState() {
  if (!view.state) return;
  el.state.textContent =
    view.state === "connected" && view.advisorName
      ? t("customer.s_connected_named", { name: view.advisorName })
      : t(`customer.s_${view.state}`);
  el.remoteName.textContent =
    view.state === "bot" ? t("chat.sender.bot") : (view.advisorName ?? t("chat.sender.advisor"));
  el.state.dataset.state = view.state;
  const live = LIVE.has(view.state);
  el.chatForm.classList.toggle("hidden", !live);
  el.end.classList.toggle("hidden", !live);
  el.again.classList.toggle("hidden", live);
}

function renderQueue() {
  leaveMessage.update(view.state, view.queue);
  if (view.state !== "queued" || !view.queue) {
    el.queue.textContent = "";
    return;
  }
  const { position, ewt_s: ewt } = view.queue;
  const where = position <= 1 ? t("customer.first") : t("customer.nth", { n: position });
  if (view.queue.staffed === false) {
    el.queue.textContent = `${where} — ${t("calls.nobody_now")}`; // no estimate: nobody to serve it
    return;
  }
  const minutes = Math.round(ewt / 60);
  const wait = ewt < 60 ? t("customer.wait_soon") : t("customer.wait_min", { m: Math.max(1, minutes) });
  el.queue.textContent = `${where} — ${wait}`;
}

function showConversation(on) {
  el.conversation.classList.toggle("hidden", !on);
  el.start.classList.toggle("hidden", on);
}

function adopt(contactId) {
  if (view.contactId === contactId) return;
  view.contactId = contactId;
  view.queue = null;
  view.advisorName = null;
  chat.clear();
  voice.reset();
  call.stop();
}

function onState(message) {
  if (view.contactId && message.contact_id !== view.contactId && OVER.has(message.state)) {
    return; // an old contact's news
  }
  adopt(message.contact_id);
  view.state = message.state;
  view.channels = message.channels ?? view.channels;
  if (message.advisor_name) view.advisorName = message.advisor_name;
  else if (!["connected", "wrap_up", "ended"].includes(message.state)) view.advisorName = null;
  if (message.resume_token) resumeStore.set(message.resume_token);
  if (OVER.has(message.state)) resumeStore.clear();
  showConversation(true);
  const reason = message.reason && has(`customer.r_${message.reason}`) ? t(`customer.r_${message.reason}`) : "";
  notice(reason);
  renderState();
  renderQueue();
  if (message.state !== "bot") voice.reset();
  // A voice or video contact talks to the bot (the server listens while it has the contact),
  // then to the advisor: the call started with the bot goes on while the contact waits.
  if (["bot", "connected"].includes(message.state) && wantsMedia(view.channels)) {
    call.start({ contactId: view.contactId, channels: view.channels, signalling });
  } else if (!LIVE.has(message.state) || !wantsMedia(view.channels)) {
    call.stop(); // over, or the call was dropped for the chat (a downgrade)
  }
  controls.update(view.state, view.channels);
}

function onQueue(message) {
  if (message.contact_id !== view.contactId) return;
  view.queue = message;
  renderQueue();
}

// ------------------------------------------------------------------ chat

function onChat(message) {
  if (view.contactId === null) adopt(message.contact_id);
  if (message.contact_id !== view.contactId) return;
  if (chat.add(message) && message.sender === "customer" && voice.takeHeard(message.text)) {
    const line = el.chat.querySelector(`li[data-seq="${message.seq}"]`);
    if (line) {
      line.dataset.via = "voice";
      line.querySelector(".who").dataset.via = t("customer.voice_spoken"); // shown by app.css
    }
  }
}

function onBotMessage(message) {
  if (message.contact_id !== view.contactId) return;
  chat.add({ sender: "bot", text: message.text, at: message.at });
}

function onVoiceStatus(message) {
  if (message.contact_id !== view.contactId || view.state !== "bot") return;
  voice.onStatus(message);
}

function onVoiceCaption(message) {
  if (message.contact_id !== view.contactId || view.state !== "bot") return;
  voice.onCaption(message);
}

function onTyping(message) {
  if (message.contact_id !== view.contactId) return;
  chat.typingFrom(message.sender);
}

// ------------------------------------------------------------------ wiring

const signalling = new Signalling({ resume: true, hello: embedded ? cookielessHello : null });
window.ccSignalling = signalling; // for the browser tests and for debugging from the console
const leaveMessage = new LeaveMessage({
  after: el.queue.parentElement,
  signalling,
  contactId: () => view.contactId,
  notice,
});
const controls = new CallControls({
  box: el.media,
  call,
  signalling,
  party: "customer",
  contactId: () => view.contactId,
  notice,
});
window.ccCall = call;

signalling.on("session.state", onState);
signalling.on("queue.position", onQueue);
signalling.on("chat.message", onChat);
signalling.on("bot.message", onBotMessage);
signalling.on("chat.typing", onTyping);
signalling.on("voice.status", onVoiceStatus);
signalling.on("voice.caption", onVoiceCaption);
signalling.on("peer.event", (m) => {
  if (m.contact_id !== view.contactId || m.party !== "advisor") return;
  if (m.state === "disconnected") notice(t("customer.peer_gone"));
  else if (m.state === "reconnected") notice(t("customer.peer_back"));
});
signalling.on("close", ({ willRetry }) => {
  document.body.dataset.connection = "closed";
  if (willRetry) notice(t("customer.reconnecting"));
});
signalling.on("open", () => {
  document.body.dataset.connection = "open";
  if (el.notice.textContent === t("customer.reconnecting")) notice("");
});
signalling.on("error", (err) => console.warn("server:", err.code, err.detail));

el.language.addEventListener("change", () => switchLanguage(el.language.value));

el.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(el.form);
  const button = el.form.querySelector("button[type=submit]");
  button.disabled = true;
  showNotice(el.startError, "");
  const channel = data.get("channel");
  try {
    const ack = await signalling.request("session.start", {
      channels: [channel],
      language: data.get("language"),
      topic: data.get("topic"),
      skip_bot: data.get("skip_bot") === "on",
    });
    if (ack.resume_token) resumeStore.set(ack.resume_token);
    if (!view.state || view.contactId !== ack.contact_id) {
      onState({ contact_id: ack.contact_id, state: ack.state, channels: [channel] });
    }
  } catch (err) {
    showNotice(el.startError, errorText(err), "error");
  } finally {
    button.disabled = false;
  }
});

wireComposer({
  form: el.chatForm,
  input: el.chatInput,
  signalling,
  contactId: () => view.contactId,
  typingActive: () => view.state === "connected",
  onError: (err) => notice(errorText(err), "error"),
});

el.end.addEventListener("click", async () => {
  if (!view.contactId) return;
  el.end.disabled = true;
  try {
    await signalling.request("session.end", { contact_id: view.contactId });
  } catch (err) {
    notice(errorText(err), "error");
  } finally {
    el.end.disabled = false;
  }
});

el.again.addEventListener("click", () => {
  call.stop();
  voice.reset();
  view.contactId = null;
  view.state = null;
  chat.clear();
  notice("");
  showConversation(false);
});

window.addEventListener("pagehide", () => call.stop());

// The page's language: the choice the browser kept from before a reload, else ?lang=, the
// server's, the browser's; the contact's language starts as the page's.
initLanguage();
const firstChoice = [...el.language.options].find((o) => o.defaultSelected) ?? el.language.options[0];
if (el.language.selectedOptions[0] !== firstChoice) switchLanguage(el.language.value);
else el.language.value = CONTACT_LANGUAGE[lang()];
/**
 * The bank's app opens this page as `/#bank_token=JWT`: sign in with it first. The token leaves
 * the address at once (a fragment reaches no server log; it is not kept in the history).
 * True when the page reloads as the signed-in customer.
 */
async function bankSignIn() {
  const token = new URLSearchParams(location.hash.slice(1)).get("bank_token");
  if (!token) return false;
  history.replaceState(null, "", location.pathname + location.search);
  let message = "";
  try {
    const response = await fetch("/api/identity/bank-token", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
      },
      body: JSON.stringify({ token }),
    });
    if (response.ok) {
      location.reload();
      return true;
    }
    message = (await response.json().catch(() => ({}))).message ?? `HTTP ${response.status}`;
  } catch (err) {
    message = errorText(err);
  }
  showNotice(el.startError, t("customer.bank_failed", { error: message }), "error");
  return false;
}

/** In the widget: take the bank page's choices, then connect with its identity (no cookie). */
async function embeddedStart() {
  const options = await embedOptions();
  if (options.language && [...el.language.options].some((o) => o.value === options.language)) {
    el.language.value = options.language;
    switchLanguage(options.language);
  }
  const topic = el.form.elements.topic;
  if (options.topic && [...topic.options].some((o) => o.value === options.topic)) topic.value = options.topic;
  const channel = el.form.querySelector(`input[name=channel][value="${options.channel}"]`);
  if (channel) channel.checked = true;
  signalling.on("session.state", (m) => tellParent("state", { state: m.state, channels: m.channels }));
  return false;
}

(embedded ? embeddedStart() : bankSignIn()).then((reloading) => {
  if (reloading) return;
  signalling.connect().then((welcome) => {
    // Signed in by the bank inside the widget: greet by name, as the page's header would.
    if (embedded && !welcome.user.startsWith("guest:")) el.who?.replaceChildren(welcome.display_name);
    // A VIP known by the bank's signed identity (the widget has no cookie for the page to know).
    if (welcome.vip) document.getElementById("vip-badge")?.classList.remove("hidden");
  }).catch((err) => {
    showConversation(false);
    showNotice(el.startError, errorText(err), "error");
    tellParent("error", { message: errorText(err) });
  });
});
