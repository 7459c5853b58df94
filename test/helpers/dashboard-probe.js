// Runs in the dashboard's page before its own scripts (page.addInitScript in test/e2e/dashboard.test.ts).
//
// Records when each element carrying `data-event-at` (a live event's relay-side time) first appears
// in the DOM: a MutationObserver callback runs right after the mutation, before paint. Both clocks
// are this machine's. Also keeps the page's WebSockets reachable, so a test can drop them.
(() => {
  window.__eventDom = [];
  window.__sockets = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      window.__sockets.push(this);
    }
  };
  const seen = new Set();
  const visit = (el) => {
    const at = el.getAttribute("data-event-at");
    if (!at) return;
    const key = `${at}|${el.getAttribute("data-state") ?? ""}|${el.getAttribute("data-message-id") ?? ""}`;
    if (seen.has(key)) return;
    seen.add(key);
    window.__eventDom.push({ at, key, dom: performance.timeOrigin + performance.now() });
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "attributes" && m.target instanceof Element) visit(m.target);
      for (const n of m.addedNodes) {
        if (!(n instanceof Element)) continue;
        visit(n);
        for (const el of n.querySelectorAll("[data-event-at]")) visit(el);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-event-at"] });
})();
