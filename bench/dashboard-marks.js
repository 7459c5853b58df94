// Loaded into the page before its own scripts by bench/dashboard-load.ts (browser JS, so kept out
// of the Node type check): marks, in the page's own clock, when the hosts table shows rows and when
// its count line appears, and scrolls the table to its end on request.
(() => {
  const marks = {};
  globalThis.__marks = marks;
  const countLine = () => [...document.querySelectorAll("p[aria-live]")].map((e) => e.textContent ?? "").join(" ");
  new MutationObserver(() => {
    if (marks.rows === undefined && document.querySelector("tr[data-host-id]")) marks.rows = performance.now();
    if (marks.count === undefined && /^\d+ hosts?/.test(countLine())) marks.count = performance.now();
  }).observe(document, { childList: true, subtree: true, characterData: true });
  // One step of "scroll to the end": true once every one of `total` hosts is loaded.
  globalThis.__scrollToEnd = (total) => {
    const scroller = document.querySelector(".vlist");
    if (scroller) scroller.scrollTop = scroller.scrollHeight;
    const text = countLine();
    return text.startsWith(`${total} host`) && !text.includes("more on scroll");
  };
  globalThis.__domRows = () => document.querySelectorAll("tr[data-host-id]").length;
})();
