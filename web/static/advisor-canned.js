// Canned replies: buttons under a panel's chat that put a common answer, in the contact's
// language, into the composer (the advisor reads, edits if needed, and sends).

/** Fill `node.canned` with the replies of `language` from `catalogue` ({lang: [{title, text}]}). */
export function renderCanned({ node, catalogue, language }) {
  const box = node.querySelector(".canned");
  const input = node.querySelector(".chat-input");
  const replies = catalogue?.[language] ?? catalogue?.en ?? [];
  box.replaceChildren(
    ...replies.map((reply) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.textContent = reply.title;
      button.title = reply.text;
      button.addEventListener("click", () => {
        const before = input.value.trim();
        input.value = before ? `${before} ${reply.text}` : reply.text;
        input.focus();
        input.setSelectionRange(input.value.length, input.value.length);
      });
      return button;
    }),
  );
  box.classList.toggle("hidden", replies.length === 0);
}
