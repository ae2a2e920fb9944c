// The contact centre's widget, for a bank's page or an app's WebView: one script tag gives a
// "Talk to us" button that opens the chat / voice / video panel in an iframe.
//
//   <script src="https://cc.example/static/widget.js" data-language="yue" data-topic="cards"></script>
//   <script>
//     ContactCenter.init({
//       language: "yue",                       // en, zh or yue
//       topic: "cards",                        // preselected topic
//       channel: "video",                      // preselected: text, voice or video
//       identityToken: () => fetch("/my-bank/cc-token").then((r) => r.text()),  // or a string
//       onEvent: (event) => console.log(event.type, event),  // ready, open, close, state, error
//     });
//   </script>
//
// A classic script (not a module) that runs on the bank's page: it touches nothing there but
// the button and the panel it adds. It speaks to the iframe by postMessage only with the
// contact centre's origin (the script's own), and hears only that origin from that iframe.
// The README (*The widget*) documents the API and the identity token's claims.
(function () {
  "use strict";
  if (window.ContactCenter) return; // included twice

  const script = document.currentScript;
  const SERVER = new URL(script.src, location.href).origin;
  const SOURCE = "contact-center";
  const PHONE_MAX_WIDTH = 600;
  // The button and the close label on the bank's page (the panel itself uses our i18n).
  const LABELS = {
    en: { open: "Talk to us", close: "Close", title: "Talk to Harbour Bank" },
    zh: { open: "联系我们", close: "关闭", title: "联系港湾银行" },
    yue: { open: "搵我哋傾", close: "關閉", title: "聯絡港灣銀行" },
  };

  let options = {};
  let button = null;
  let panel = null;
  let frame = null;
  let ready = false;

  function labels() {
    return LABELS[options.language] || LABELS.en;
  }

  function emit(type, fields) {
    if (typeof options.onEvent === "function") {
      try {
        options.onEvent(Object.assign({ type: type }, fields || {}));
      } catch (err) {
        console.error("ContactCenter onEvent", err);
      }
    }
  }

  function place() {
    if (!panel) return;
    const phone = window.innerWidth <= PHONE_MAX_WIDTH;
    Object.assign(panel.style, phone
      ? { inset: "0", width: "100%", height: "100%", borderRadius: "0" }
      : { inset: "auto 24px 24px auto", width: "400px", height: "min(680px, calc(100vh - 48px))", borderRadius: "12px" });
  }

  function build() {
    button = document.createElement("button");
    button.type = "button";
    button.className = "cc-widget-button";
    button.textContent = options.label || labels().open;
    button.setAttribute("aria-haspopup", "dialog");
    Object.assign(button.style, {
      position: "fixed", right: "24px", bottom: "24px", zIndex: "2147483000",
      background: "#0b6e4f", color: "#fff", border: "0", borderRadius: "999px",
      padding: "14px 22px", font: "600 16px/1.2 system-ui, sans-serif", cursor: "pointer",
      boxShadow: "0 4px 14px rgba(0,0,0,.25)",
    });
    button.addEventListener("click", open);

    panel = document.createElement("div");
    panel.className = "cc-widget-panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", labels().title);
    Object.assign(panel.style, {
      position: "fixed", zIndex: "2147483001", display: "none", flexDirection: "column",
      background: "#fff", boxShadow: "0 8px 30px rgba(0,0,0,.3)", overflow: "hidden",
    });
    const close = document.createElement("button");
    close.type = "button";
    close.className = "cc-widget-close";
    close.textContent = "×";
    close.setAttribute("aria-label", labels().close);
    Object.assign(close.style, {
      position: "absolute", top: "6px", right: "8px", zIndex: "1", width: "36px", height: "36px",
      border: "0", borderRadius: "50%", background: "rgba(255,255,255,.9)", color: "#14213d",
      font: "24px/1 system-ui, sans-serif", cursor: "pointer",
    });
    close.addEventListener("click", closePanel);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closePanel();
    });
    panel.append(close);
    document.body.append(button, panel);
    window.addEventListener("resize", place);
    place();
  }

  function createFrame() {
    frame = document.createElement("iframe");
    frame.className = "cc-widget-frame";
    frame.title = labels().title;
    // The panel needs the camera and the microphone for voice and video, from our origin only.
    frame.allow = `camera ${SERVER}; microphone ${SERVER}; autoplay ${SERVER}`;
    Object.assign(frame.style, { border: "0", width: "100%", height: "100%", flex: "1" });
    frame.src = `${SERVER}/widget?origin=${encodeURIComponent(location.origin)}`;
    panel.append(frame);
  }

  async function sendInit() {
    let token = options.identityToken;
    try {
      if (typeof token === "function") token = await token(); // fresh for each panel load
    } catch (err) {
      emit("error", { message: `identity token: ${err && err.message ? err.message : err}` });
      token = null;
    }
    frame.contentWindow.postMessage(
      {
        source: SOURCE, type: "init", language: options.language, topic: options.topic,
        channel: options.channel, identityToken: typeof token === "string" ? token : null,
      },
      SERVER,
    );
  }

  function onMessage(event) {
    // Only our iframe, from our origin.
    if (!frame || event.source !== frame.contentWindow || event.origin !== SERVER) return;
    const data = event.data;
    if (!data || data.source !== SOURCE) return;
    if (data.type === "ready") {
      ready = true;
      sendInit();
    }
    const fields = Object.assign({}, data);
    delete fields.source;
    delete fields.type;
    emit(data.type, fields);
  }

  function open() {
    if (!panel) build();
    if (!frame) createFrame();
    panel.style.display = "flex";
    button.style.display = "none";
    place();
    frame.focus();
    emit("open");
  }

  function closePanel() {
    if (!panel) return;
    panel.style.display = "none";
    button.style.display = "";
    button.focus();
    emit("close");
  }

  window.addEventListener("message", onMessage);

  window.ContactCenter = {
    /** Show the button (once); `options` as in the comment above. */
    init(given) {
      options = Object.assign({}, options, given || {});
      if (!button) build();
      return this;
    },
    open() {
      if (!button) this.init();
      open();
    },
    close: closePanel,
    get ready() {
      return ready;
    },
  };

  // Without a call to init: the data attributes of the script tag (data-manual: wait for init).
  const data = script.dataset;
  if (!("manual" in data)) {
    const start = () => window.ContactCenter.init({ language: data.language, topic: data.topic, channel: data.channel, label: data.label });
    if (document.body) start();
    else document.addEventListener("DOMContentLoaded", start);
  }
})();
