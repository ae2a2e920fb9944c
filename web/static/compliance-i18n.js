// The compliance console's words and formats, on the shared catalogues (static/i18n.js).
//
// Its strings are the catalogues' `compliance.*` keys (the "---- compliance" block of each
// static/i18n/*.js); `t("search.title")` looks up `compliance.search.title` first, then the
// shared `search.title`, so the pages also use the shared words (`lang.zh`, `channel.video`,
// `dur.*`, `nav.sign_out`). Officers pick English or Chinese in the page's own menu; the choice
// is kept for the next page (localStorage), `?lang=` still comes first.

import {
  duration as sharedDuration,
  has as sharedHas,
  lang,
  normalizeLang,
  pickLanguage,
  setLanguage,
  t as sharedT,
} from "./i18n.js";

const PREFIX = "compliance.";
const STORE = "cc.compliance.lang";
// Hong Kong staff read Traditional Chinese: a Cantonese browser gets it too.
const CONSOLE_LANG = { en: "en", "zh-Hant": "zh-Hant", "zh-Hans": "zh-Hans", yue: "zh-Hant" };
const LOCALES = { en: "en-GB", "zh-Hant": "zh-Hant-HK", "zh-Hans": "zh-Hans-CN", yue: "zh-Hant-HK" };

export function has(key) {
  return sharedHas(PREFIX + key) || sharedHas(key);
}

/** The string for `key` (`compliance.<key>`, else the shared `<key>`), `{name}` filled in. */
export function t(key, params = {}) {
  return sharedT(sharedHas(PREFIX + key) ? PREFIX + key : key, params);
}

/** `prefix + value` translated when the catalogue has it, else the value as words; "" for none. */
export function named(prefix, value) {
  if (value === null || value === undefined || value === "") return "";
  const key = `${prefix}${value}`;
  return has(key) ? t(key) : String(value).replaceAll("_", " ");
}

/** Fill `[data-i18n]`, `[data-i18n-placeholder]` and `[data-i18n-label]` (aria-label) below root. */
export function apply(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of root.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
}

function locale() {
  return LOCALES[lang()] ?? "en-GB";
}

function stored() {
  try {
    return localStorage.getItem(STORE);
  } catch {
    return null; // storage refused: the page's language still comes from the browser
  }
}

function remember(code) {
  try {
    localStorage.setItem(STORE, code);
  } catch {
    /* not kept: the next page picks again */
  }
}

/** The console's language: `?lang=`, then the officer's last choice, then the browser's. */
function initial() {
  const asked = normalizeLang(new URLSearchParams(location.search).get("lang"));
  const picked = asked ?? normalizeLang(stored()) ?? pickLanguage();
  return CONSOLE_LANG[picked] ?? "en";
}

/** Put the page in its language and let `select` switch it ("languagechange" on document). */
export function mountLanguage(select) {
  const code = setLanguage(initial());
  apply(document);
  if (!select) return code;
  select.value = code;
  select.addEventListener("change", () => {
    const chosen = setLanguage(select.value);
    remember(chosen);
    apply(document);
    document.dispatchEvent(new CustomEvent("languagechange", { detail: { lang: chosen } }));
  });
  return code;
}

// ------------------------------------------------------------------ formats

export function number(value) {
  return new Intl.NumberFormat(locale()).format(value ?? 0);
}

function formatted(iso, options) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  // 24-hour clock in every language, as the bank's records are kept.
  return new Intl.DateTimeFormat(locale(), { hourCycle: "h23", ...options }).format(date);
}

/** 2 Dec 2026, 16:45 (the browser's time zone). */
export function dateTime(iso) {
  return formatted(iso, { dateStyle: "medium", timeStyle: "short" });
}

/** 2 Dec 2026, 16:45:07. */
export function dateTimeSeconds(iso) {
  return formatted(iso, { dateStyle: "medium", timeStyle: "medium" });
}

/** 42 s, 3 min 5 s; "—" when unknown (a contact still open). */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  return sharedDuration(Number(seconds));
}

/** 16:45 (a time of today, e.g. when the case's access ends). */
export function timeOfDay(iso) {
  return formatted(iso, { timeStyle: "short" });
}

/** A position to a tenth of a second: 0:00.9, 1:02.5. */
export function clockTenths(seconds) {
  const value = Math.max(0, Number(seconds) || 0);
  const tenths = Math.floor((value * 10) % 10);
  return `${clock(value)}.${tenths}`;
}

/** A position on the replay's clock: 0:07, 12:30, 1:02:03. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** 812 B, 14.2 KB, 3.1 MB. */
export function size(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(value)} ${units[unit]}`;
}
