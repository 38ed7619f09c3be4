// notes-api admin: an enhancement, never required. Shows every <time> in
// the browser's own time zone (the UTC value stays in its title, on
// hover), and keeps a queued or running job's page up to date.
"use strict";

function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      el.textContent = format.format(when);
    }
  }
}

// A page marked data-follow (a job still queued or running) is fetched
// again every 2 s and its main part swapped in, until the job ends (the
// new page is no longer marked) or an hour has passed. Without script,
// the page has a link to reload it.
function follow() {
  const started = Date.now();
  const step = async () => {
    if (Date.now() - started > 3600 * 1000) {
      return;
    }
    try {
      const res = await fetch(location.href, { credentials: "same-origin" });
      if (!res.ok) {
        return;
      }
      const next = new DOMParser().parseFromString(await res.text(), "text/html").querySelector("main");
      const main = document.querySelector("main");
      if (!next || !main) {
        return;
      }
      main.replaceChildren(...next.childNodes);
      localTimes(main);
      if (main.querySelector("[data-follow]")) {
        setTimeout(step, 2000);
      }
    } catch (e) {
      // Offline or signed out: the page stays as it is, with its link.
    }
  };
  setTimeout(step, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  if (document.querySelector("[data-follow]")) {
    follow();
  }
});
