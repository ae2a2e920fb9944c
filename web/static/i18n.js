// The pages' own words in four languages: `t(key, params)` looks a string up in the page's
// language, falling back along FALLBACK, and fills in `{name}` from params (a catalogue entry may
// also be a function of params, for plurals and ordinals).
//
// The language is picked once, from `?lang=`, then the `<html lang>` the server rendered (unless
// it marks it as only the default, `data-lang-default`), then the browser's languages; English
// when none of them is one we have.

import en from "./i18n/en.js";
import yue from "./i18n/yue.js";
import zhHans from "./i18n/zh-Hans.js";
import zhHant from "./i18n/zh-Hant.js";

export const CATALOGUES = { en, "zh-Hant": zhHant, "zh-Hans": zhHans, yue };
export const LANGUAGES = Object.keys(CATALOGUES);

/** Where a missing string is looked up next. */
export const FALLBACK = {
  en: ["en"],
  "zh-Hant": ["zh-Hant", "en"],
  "zh-Hans": ["zh-Hans", "en"],
  yue: ["yue", "zh-Hant", "en"],
};

/** What `<html lang>` says for each: fonts and screen readers go by it. */
const HTML_LANG = { en: "en", "zh-Hant": "zh-Hant", "zh-Hans": "zh-Hans", yue: "zh-Hant-HK" };

let current = "en";

/** One of LANGUAGES for a BCP 47 tag (or a contact's language: en, zh, yue), or null. */
export function normalizeLang(tag) {
  if (!tag) return null;
  const parts = String(tag).trim().toLowerCase().replaceAll("_", "-").split("-");
  const [primary, ...rest] = parts;
  if (primary === "en") return "en";
  if (primary === "yue") return "yue";
  if (primary !== "zh") return null;
  if (rest.includes("hk") || rest.includes("mo")) return "yue";
  if (rest.includes("hant") || rest.includes("tw")) return "zh-Hant";
  return "zh-Hans"; // zh, zh-Hans, zh-CN, zh-SG
}

/** The language of this page: `?lang=`, the server's `<html lang>`, the browser's; else English. */
export function pickLanguage({
  search = globalThis.location?.search ?? "",
  root = globalThis.document?.documentElement,
  browser = globalThis.navigator?.languages ?? [globalThis.navigator?.language],
} = {}) {
  const asked = new URLSearchParams(search).get("lang");
  const server = root && !root.hasAttribute("data-lang-default") ? root.getAttribute("lang") : null;
  for (const tag of [asked, server, ...(browser ?? [])]) {
    const lang = normalizeLang(tag);
    if (lang) return lang;
  }
  return "en";
}

export function lang() {
  return current;
}

function lookup(key) {
  for (const code of FALLBACK[current]) {
    const value = CATALOGUES[code][key];
    if (value !== undefined) return value;
  }
  return undefined;
}

export function has(key) {
  return lookup(key) !== undefined;
}

/** The string for `key` in the page's language, `{name}` filled from params; the key if none. */
export function t(key, params = {}) {
  const value = lookup(key);
  if (value === undefined) return key;
  if (typeof value === "function") return value(params);
  return value.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Fill `[data-i18n]` (text), `[data-i18n-placeholder]` and `[data-i18n-aria-label]` below root,
 * templates' content too. */
export function applyTranslations(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of root.querySelectorAll("[data-i18n-aria-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
  }
  for (const template of root.querySelectorAll("template")) applyTranslations(template.content);
}

/** Switch the page to `code` (one of LANGUAGES, or anything normalizeLang knows). */
export function setLanguage(code) {
  current = normalizeLang(code) ?? "en";
  if (globalThis.document) {
    document.documentElement.lang = HTML_LANG[current];
    document.documentElement.removeAttribute("data-lang-default");
    applyTranslations(document);
  }
  return current;
}

/** Pick the page's language and put it on the page. */
export function initLanguage(options) {
  return setLanguage(pickLanguage(options));
}

// ------------------------------------------------------------------ words built from parts

/** A contact's language (en, zh, yue) by name. */
export function languageName(code) {
  return has(`lang.${code}`) ? t(`lang.${code}`) : code;
}

export function channelsText(channels) {
  return (channels ?? []).map((c) => (has(`channel.${c}`) ? t(`channel.${c}`) : c)).join(" + ");
}

/** An advisor's routing state (available, busy, wrap_up…) as a short word. */
export function agentStateName(state) {
  return has(`agent.${state}`) ? t(`agent.${state}`) : state.replace("_", "-");
}

/** 42 s, 3 min 5 s, 1 h 4 min. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("dur.s", { s });
  const m = Math.floor(s / 60);
  if (m < 60) return t("dur.ms", { m, s: s % 60 });
  return t("dur.hm", { h: Math.floor(m / 60), m: m % 60 });
}
