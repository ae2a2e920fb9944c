// Notices: one line of text in an element that hides itself when there is nothing to say.

/** Show `text` in `node` (hide it when empty); kind "error" styles it as an error. */
export function showNotice(node, text, kind = "info") {
  node.textContent = text ?? "";
  node.classList.toggle("hidden", !text);
  // Cleared, it keeps its look: an element that only ever shows errors stays class="error".
  if (text) node.classList.toggle("error", kind === "error");
}

/** `(text, kind) => …` bound to one element: the page's notice line. */
export function noticeOn(node) {
  return (text, kind = "info") => showNotice(node, text, kind);
}

/** What to tell a person about a failed request: the server's words, else the error's. */
export function errorText(err) {
  return err?.detail ?? err?.message ?? String(err);
}
