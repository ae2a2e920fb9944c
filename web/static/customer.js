// The customer page: start a contact, follow its state and queue position, chat, talk.

import { MediaLink, iceServersFrom } from "./media.js";
import { Signalling, resumeStore } from "./ws.js";

const TEXT = {
  en: {
    title: "Talk to us",
    intro: "Chat, call or video-call an advisor.",
    how: "How would you like to talk?",
    chat: "Chat",
    voice: "Voice",
    video: "Video",
    language: "Language",
    topic: "Topic",
    t_general: "Something else",
    t_cards: "Cards",
    t_fx: "Foreign exchange",
    t_remittance: "Remittance",
    t_loans: "Loans",
    t_investments: "Investments",
    t_accounts: "Accounts",
    t_complaints: "A complaint",
    skip_bot: "Skip the assistant and wait for a person",
    start: "Start",
    advisor: "Advisor",
    you: "You",
    assistant: "Assistant",
    typing: "The advisor is typing…",
    placeholder: "Type a message",
    send: "Send",
    end: "End conversation",
    again: "Start a new conversation",
    s_bot: "Chatting with our assistant",
    s_queued: "Waiting for an advisor",
    s_offered: "Connecting you to an advisor…",
    s_connected: "Connected to an advisor",
    s_wrap_up: "The conversation has ended",
    s_ended: "The conversation has ended",
    s_abandoned: "You left the queue",
    r_transferred: "You are being transferred to another advisor. You keep your place in line.",
    r_advisor_gone: "Your advisor lost their connection. We are finding you another one.",
    r_customer_gone: "The conversation ended because the connection was lost.",
    first: "You are next in line",
    nth: (n) => `You are ${ordinal(n)} in line`,
    wait_soon: "less than a minute",
    wait_min: (m) => `about ${m} min`,
    reconnecting: "Connection lost. Reconnecting…",
    media_starting: "Starting your microphone and camera…",
    media_no_device: "We could not use your microphone or camera; you can still hear the advisor.",
    media_connected: "Call connected.",
    media_failed: "The call could not connect. Chat still works.",
    peer_gone: "The advisor's connection dropped. Please wait…",
    peer_back: "The advisor is back.",
    system: "Notice",
  },
  zh: {
    title: "联系我们",
    intro: "与客户经理文字聊天、语音通话或视频通话。",
    how: "您希望如何沟通？",
    chat: "文字",
    voice: "语音",
    video: "视频",
    language: "语言",
    topic: "主题",
    t_general: "其他",
    t_cards: "银行卡",
    t_fx: "外汇",
    t_remittance: "汇款",
    t_loans: "贷款",
    t_investments: "投资",
    t_accounts: "账户",
    t_complaints: "投诉",
    skip_bot: "跳过智能助手，直接等待人工服务",
    start: "开始",
    advisor: "客户经理",
    you: "您",
    assistant: "智能助手",
    typing: "客户经理正在输入…",
    placeholder: "输入消息",
    send: "发送",
    end: "结束对话",
    again: "开始新的对话",
    s_bot: "正在与智能助手对话",
    s_queued: "正在等待客户经理",
    s_offered: "正在为您接通客户经理…",
    s_connected: "已接通客户经理",
    s_wrap_up: "对话已结束",
    s_ended: "对话已结束",
    s_abandoned: "您已离开队列",
    r_transferred: "正在为您转接其他客户经理，您的排队位置保持不变。",
    r_advisor_gone: "客户经理的连接已断开，正在为您安排其他客户经理。",
    r_customer_gone: "由于连接中断，对话已结束。",
    first: "下一位就是您",
    nth: (n) => `您排在第 ${n} 位`,
    wait_soon: "不到一分钟",
    wait_min: (m) => `约 ${m} 分钟`,
    reconnecting: "连接已断开，正在重新连接…",
    media_starting: "正在启动麦克风和摄像头…",
    media_no_device: "无法使用您的麦克风或摄像头，但您仍可听到客户经理。",
    media_connected: "通话已接通。",
    media_failed: "通话无法接通，文字聊天仍可使用。",
    peer_gone: "客户经理的连接已断开，请稍候…",
    peer_back: "客户经理已重新连接。",
    system: "通知",
  },
  yue: {
    title: "聯絡我們",
    intro: "同客戶經理文字傾偈、語音通話或者視像通話。",
    how: "你想點樣同我哋傾？",
    chat: "文字",
    voice: "語音",
    video: "視像",
    language: "語言",
    topic: "主題",
    t_general: "其他",
    t_cards: "銀行卡",
    t_fx: "外匯",
    t_remittance: "匯款",
    t_loans: "貸款",
    t_investments: "投資",
    t_accounts: "戶口",
    t_complaints: "投訴",
    skip_bot: "跳過智能助手，直接等真人服務",
    start: "開始",
    advisor: "客戶經理",
    you: "你",
    assistant: "智能助手",
    typing: "客戶經理輸入緊…",
    placeholder: "輸入訊息",
    send: "發送",
    end: "結束對話",
    again: "開始新嘅對話",
    s_bot: "同智能助手傾緊偈",
    s_queued: "等緊客戶經理",
    s_offered: "幫你接通緊客戶經理…",
    s_connected: "已經接通客戶經理",
    s_wrap_up: "對話已經結束",
    s_ended: "對話已經結束",
    s_abandoned: "你已經離開咗輪候",
    r_transferred: "幫你轉駁緊另一位客戶經理，你嘅輪候位置保持不變。",
    r_advisor_gone: "客戶經理斷咗線，幫你搵緊另一位。",
    r_customer_gone: "因為連線中斷，對話已經結束。",
    first: "下一位就到你",
    nth: (n) => `你排第 ${n} 位`,
    wait_soon: "唔使一分鐘",
    wait_min: (m) => `大約 ${m} 分鐘`,
    reconnecting: "斷咗線，重新連接緊…",
    media_starting: "啟動緊咪高峰同鏡頭…",
    media_no_device: "用唔到你嘅咪高峰或者鏡頭，不過你仍然聽到客戶經理。",
    media_connected: "通話已經接通。",
    media_failed: "通話接唔通，文字傾偈仍然可以用。",
    peer_gone: "客戶經理斷咗線，請稍等…",
    peer_back: "客戶經理返嚟咗。",
    system: "通知",
  },
};

const HTML_LANG = { en: "en", zh: "zh-Hans", yue: "zh-Hant-HK" };
const LIVE = new Set(["bot", "queued", "offered", "connected"]);
const OVER = new Set(["wrap_up", "ended", "abandoned"]);
const TYPING_SEND_EVERY_MS = 2500;
const TYPING_SHOW_MS = 4000;

export function ordinal(n) {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${{ 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th"}`;
}

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
  local: $("local"),
  chat: $("chat"),
  typing: $("typing"),
  chatForm: $("chat-form"),
  chatInput: $("chat-input"),
  end: $("end"),
  again: $("again"),
};

const view = {
  lang: "en",
  contactId: null,
  state: null,
  channels: [],
  seqs: new Set(),
  media: null,
  typingTimer: null,
  lastTypingSent: 0,
  queue: null,
};

const t = (key, ...args) => {
  const value = TEXT[view.lang]?.[key] ?? TEXT.en[key] ?? key;
  return typeof value === "function" ? value(...args) : value;
};

function setLanguage(lang) {
  view.lang = TEXT[lang] ? lang : "en";
  document.documentElement.lang = HTML_LANG[view.lang];
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  renderState();
  renderQueue();
}

function notice(text, kind = "info") {
  el.notice.textContent = text ?? "";
  el.notice.classList.toggle("hidden", !text);
  el.notice.classList.toggle("error", kind === "error");
}

// ------------------------------------------------------------------ state

function renderState() {
  if (!view.state) return;
  el.state.textContent = t(`s_${view.state}`);
  el.state.dataset.state = view.state;
  const live = LIVE.has(view.state);
  el.chatForm.classList.toggle("hidden", !live);
  el.end.classList.toggle("hidden", !live);
  el.again.classList.toggle("hidden", live);
}

function renderQueue() {
  if (view.state !== "queued" || !view.queue) {
    el.queue.textContent = "";
    return;
  }
  const { position, ewt_s: ewt } = view.queue;
  const where = position <= 1 ? t("first") : t("nth", position);
  const minutes = Math.round(ewt / 60);
  const wait = ewt < 60 ? t("wait_soon") : t("wait_min", Math.max(1, minutes));
  el.queue.textContent = `${where} — ${wait}`;
}

function showConversation(on) {
  el.conversation.classList.toggle("hidden", !on);
  el.start.classList.toggle("hidden", on);
}

function adopt(contactId) {
  if (view.contactId === contactId) return;
  view.contactId = contactId;
  view.seqs.clear();
  view.queue = null;
  el.chat.replaceChildren();
  stopMedia();
}

function onState(message) {
  if (view.contactId && message.contact_id !== view.contactId && OVER.has(message.state)) {
    return; // an old contact's news
  }
  adopt(message.contact_id);
  view.state = message.state;
  view.channels = message.channels ?? view.channels;
  if (message.resume_token) resumeStore.set(message.resume_token);
  if (OVER.has(message.state)) resumeStore.clear();
  showConversation(true);
  const reason = message.reason && TEXT.en[`r_${message.reason}`] ? t(`r_${message.reason}`) : "";
  notice(reason);
  renderState();
  renderQueue();
  if (message.state === "connected" && wantsMedia()) startMedia();
  else if (message.state !== "connected") stopMedia();
}

function onQueue(message) {
  if (message.contact_id !== view.contactId) return;
  view.queue = message;
  renderQueue();
}

// ------------------------------------------------------------------ chat

function senderLabel(sender) {
  return { customer: t("you"), advisor: t("advisor"), bot: t("assistant"), system: t("system") }[
    sender
  ];
}

function chatLine({ seq, sender, text, at }) {
  const li = document.createElement("li");
  li.className = sender === "customer" ? "mine" : sender;
  if (seq !== undefined) li.dataset.seq = String(seq);
  li.dataset.sender = sender;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = senderLabel(sender);
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  if (at) li.title = new Date(at).toLocaleString();
  return li;
}

/** Insert in seq order; a line seen before (history replayed on reconnect) is skipped. */
function onChat(message) {
  if (view.contactId === null) adopt(message.contact_id);
  if (message.contact_id !== view.contactId || view.seqs.has(message.seq)) return;
  view.seqs.add(message.seq);
  const li = chatLine(message);
  const after = [...el.chat.children].find((n) => n.dataset.seq && Number(n.dataset.seq) > message.seq);
  el.chat.insertBefore(li, after ?? null);
  if (message.sender === "advisor") hideTyping();
  el.chat.scrollTop = el.chat.scrollHeight;
}

function onBotMessage(message) {
  if (message.contact_id !== view.contactId) return;
  el.chat.append(chatLine({ sender: "bot", text: message.text, at: message.at }));
}

function hideTyping() {
  clearTimeout(view.typingTimer);
  el.typing.classList.add("hidden");
}

function onTyping(message) {
  if (message.contact_id !== view.contactId || message.sender !== "advisor") return;
  el.typing.classList.remove("hidden");
  clearTimeout(view.typingTimer);
  view.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
}

// ------------------------------------------------------------------ media

function wantsMedia() {
  return view.channels.includes("voice") || view.channels.includes("video");
}

function startMedia() {
  if (view.media?.active || (view.media && !view.media.closed && !view.media.pc)) return;
  view.media?.stop();
  el.media.classList.remove("hidden");
  el.media.classList.toggle("voice", !view.channels.includes("video"));
  const link = new MediaLink({
    signalling,
    contactId: view.contactId,
    channels: view.channels,
    localEl: el.local,
    remoteEl: el.remote,
    iceServers: iceServersFrom(el.media),
    onChange: (state, detail) => {
      if (link !== view.media && state !== "closed") return;
      const text = {
        starting: t("media_starting"),
        local: detail?.error ? t("media_no_device") : t("media_starting"),
        connected: t("media_connected"),
        failed: t("media_failed"),
      }[state];
      const voice = !view.channels.includes("video");
      if (text) el.mediaStatus.textContent = voice ? `${t("voice")} — ${text}` : text;
      el.media.dataset.state = state;
    },
  });
  view.media = link;
  link.start().catch((err) => {
    console.error("media", err);
    if (link === view.media) el.mediaStatus.textContent = t("media_failed");
  });
}

function stopMedia() {
  view.media?.stop();
  view.media = null;
  el.media.classList.add("hidden");
}

// ------------------------------------------------------------------ wiring

const signalling = new Signalling({ resume: true });
window.ccSignalling = signalling; // for the browser tests and for debugging from the console

signalling.on("session.state", onState);
signalling.on("queue.position", onQueue);
signalling.on("chat.message", onChat);
signalling.on("bot.message", onBotMessage);
signalling.on("chat.typing", onTyping);
signalling.on("peer.event", (m) => {
  if (m.contact_id !== view.contactId || m.party !== "advisor") return;
  if (m.state === "disconnected") notice(t("peer_gone"));
  else if (m.state === "reconnected") notice(t("peer_back"));
});
signalling.on("close", ({ willRetry }) => {
  document.body.dataset.connection = "closed";
  if (willRetry) notice(t("reconnecting"));
});
signalling.on("open", () => {
  document.body.dataset.connection = "open";
  if (el.notice.textContent === t("reconnecting")) notice("");
});
signalling.on("error", (err) => console.warn("server:", err.code, err.detail));

el.language.addEventListener("change", () => setLanguage(el.language.value));

el.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(el.form);
  const button = el.form.querySelector("button[type=submit]");
  button.disabled = true;
  el.startError.classList.add("hidden");
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
    el.startError.textContent = err.detail ?? String(err);
    el.startError.classList.remove("hidden");
  } finally {
    button.disabled = false;
  }
});

el.chatForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = el.chatInput.value.trim();
  if (!text || !view.contactId) return;
  el.chatInput.value = "";
  try {
    await signalling.request("chat.send", { contact_id: view.contactId, text });
  } catch (err) {
    el.chatInput.value = text; // not lost: the customer can send it again
    notice(err.detail ?? String(err), "error");
  }
});

el.chatInput.addEventListener("input", () => {
  const now = Date.now();
  if (!view.contactId || view.state !== "connected" || now - view.lastTypingSent < TYPING_SEND_EVERY_MS) {
    return;
  }
  view.lastTypingSent = now;
  signalling.request("chat.typing", { contact_id: view.contactId }).catch(() => {});
});

el.end.addEventListener("click", async () => {
  if (!view.contactId) return;
  el.end.disabled = true;
  try {
    await signalling.request("session.end", { contact_id: view.contactId });
  } catch (err) {
    notice(err.detail ?? String(err), "error");
  } finally {
    el.end.disabled = false;
  }
});

el.again.addEventListener("click", () => {
  stopMedia();
  view.contactId = null;
  view.state = null;
  view.seqs.clear();
  el.chat.replaceChildren();
  notice("");
  showConversation(false);
});

window.addEventListener("pagehide", () => view.media?.stop());

setLanguage(el.language.value);
signalling.connect().catch((err) => {
  showConversation(false);
  el.startError.textContent = err.detail ?? String(err);
  el.startError.classList.remove("hidden");
});
