// The customer page inside the widget's iframe (`/widget`, body.embedded), on a bank's page of
// another origin or in an app's WebView. The bank's page talks to it by postMessage, and only
// the origin it named in `?origin=` (one of CC_WIDGET_ORIGINS, which the server lists in
// `data-parent-origins`) is listened to or written to. Third-party cookies may be blocked in
// an iframe, so the WebSocket is authenticated by its hello: the bank's signed token, or a
// new guest, and after that the rejoin token the server gives.
//
// Messages (all `{source: "contact-center", type, ...}`):
//   iframe -> page: ready, state {state, channels}, error {message}
//   page -> iframe: init {language?, topic?, channel?, identityToken?}
// An app's WebView (no parent page) passes the same in the fragment:
//   /widget#bank_token=JWT&language=yue&topic=cards&channel=video

const SOURCE = "contact-center";
const INIT_WAIT_MS = 4000;

export const embedded = document.body.classList.contains("embedded");

function allowedOrigins() {
  try {
    return JSON.parse(document.body.dataset.parentOrigins ?? "[]");
  } catch {
    return [];
  }
}

/** The bank page's origin, if it is one we may talk to (else null: nothing is posted). */
function parentOrigin() {
  if (window.parent === window) return null;
  const claimed = new URLSearchParams(location.search).get("origin");
  return claimed && allowedOrigins().includes(claimed) ? claimed : null;
}

const target = embedded ? parentOrigin() : null;
let identityToken = null;

/** Post to the bank's page (nothing if it is not an allowed origin). */
export function tellParent(type, fields = {}) {
  if (target) window.parent.postMessage({ source: SOURCE, type, ...fields }, target);
}

/** What the page or the app asked for: `{language, topic, channel}`; the identity token is kept
 * for the first hello. Resolves after the page's init, or after a while without one. */
export function embedOptions() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (!target) {
    identityToken = fragment.get("bank_token");
    return Promise.resolve({
      language: fragment.get("language"),
      topic: fragment.get("topic"),
      channel: fragment.get("channel"),
    });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({}), INIT_WAIT_MS);
    window.addEventListener("message", function onMessage(event) {
      // Only the page that embedded us, from the origin it said it has.
      if (event.source !== window.parent || event.origin !== target) return;
      const data = event.data;
      if (!data || data.source !== SOURCE || data.type !== "init") return;
      window.removeEventListener("message", onMessage);
      clearTimeout(timer);
      identityToken = typeof data.identityToken === "string" ? data.identityToken : null;
      resolve({ language: data.language, topic: data.topic, channel: data.channel });
    });
    tellParent("ready");
  });
}

/** The first hello's fields: the bank's token (used once), else a guest. */
export async function cookielessHello() {
  const token = identityToken;
  identityToken = null;
  return token ? { bank_token: token } : { guest: true };
}
