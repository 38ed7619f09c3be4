// The admin UI in a real browser: headless Chromium (Debian's) driven by
// playwright-core, with axe-core checking every page. Run by
// scripts/admin-browser.sh, which starts the server and passes:
//   BASE      the server's origin (http://localhost:PORT)
//   MASTER    its master key
//   BLOCKER   a path the test may create and remove (a dead job's cause)
//   SHOTS     where the screenshots go (kept as test artifacts)
//   CHROMIUM  the browser binary
// Exits non-zero on the first failed check, with what failed.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { chromium } = require("playwright-core");

const BASE = process.env.BASE;
const MASTER = process.env.MASTER;
const BLOCKER = process.env.BLOCKER;
const SHOTS = process.env.SHOTS;
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const api = async (method, route, body, key = MASTER, headers = {}) => {
  const res = await fetch(BASE + route, {
    method,
    headers: { authorization: `Bearer ${key}`, ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
};
const json = (method, route, value, key) =>
  api(method, route, JSON.stringify(value), key, { "content-type": "application/json" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, seconds = 20) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`never: ${what}`);
    await sleep(100);
  }
}

const checked = [];
/// Screenshot and accessibility check of the page as it is now.
async function inspect(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${name}: serious or critical accessibility violations`);
  checked.push(`${name} (${result.length} minor)`);
}

async function seed() {
  for (let i = 0; i < 59; i++) {
    assert.equal((await json("POST", "/api/v1/notes", { title: `filler note ${i}` })).status, 201);
  }
  const note = await json("POST", "/api/v1/notes", {
    title: "Platypus field notes",
    body: "The platypus swims at dusk. <script>alert('x')</script>",
    tags: ["zoo"],
  });
  assert.equal(note.status, 201);
  const bytes = crypto.randomBytes(3000);
  const up = await api("POST", `/api/v1/notes/${note.json.id}/attachments?filename=tracks.bin`, bytes, MASTER, {
    "content-type": "application/octet-stream",
  });
  assert.equal(up.status, 201, JSON.stringify(up.json));
  const admin = await json("POST", "/api/v1/keys", { name: "ops", scopes: ["admin"] });
  assert.equal(admin.status, 201);
  fs.writeFileSync(BLOCKER, "not a directory");
  const job = await json("POST", "/api/v1/jobs", { kind: "backup", args: { to: path.join(BLOCKER, "backups") } });
  assert.equal(job.status, 202, JSON.stringify(job.json));
  await until("the backup job is dead", async () => (await api("GET", `/api/v1/jobs/${job.json.id}`)).json.status === "dead");
  return { note: note.json, sha256: crypto.createHash("sha256").update(bytes).digest("hex"), admin: admin.json, job: job.json };
}

/// A page on another origin that posts a form to the admin UI on load.
function evilSite() {
  const server = http.createServer((req, res) => {
    res.setHeader("content-type", "text/html");
    res.end(`<!doctype html><html lang="en"><title>evil</title><body>
      <form id="f" method="post" action="${BASE}/admin/keys">
        <input name="csrf" value="guess"><input name="name" value="evil"><input name="scope" value="admin">
      </form><script>document.getElementById("f").submit()</script></body></html>`);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function logIn(page, key) {
  await page.goto(`${BASE}/admin/notes`);
  assert.match(page.url(), /\/admin\/login$/, "an anonymous visit goes to the log-in form");
  await page.fill("#key", key);
  await Promise.all([page.waitForURL(/\/admin\/notes$/), page.click("button[type=submit]")]);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const seeded = await seed();
  const evil = await evilSite();
  const evilOrigin = `http://127.0.0.1:${evil.address().port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const offOrigin = [];
  const newContext = async (options = {}) => {
    const context = await browser.newContext({ acceptDownloads: true, ...options });
    // Nothing a page loads may come from anywhere but the server (the evil
    // site is the one other origin, and only its page).
    await context.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.origin === new URL(BASE).origin || url.origin === evilOrigin) return route.continue();
      offOrigin.push(url.href);
      return route.abort();
    });
    return context;
  };

  // Log in with an admin key; the cookie's flags.
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${BASE}/admin/notes`);
  await inspect(page, "login");
  await logIn(page, seeded.admin.key);
  const [cookie] = (await context.cookies()).filter((c) => c.name === "notes_admin");
  assert.ok(cookie, "a session cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/admin");
  assert.equal(cookie.secure, true);
  assert.match(cookie.value, /^[0-9a-f]{64}$/);
  assert.ok(!cookie.value.includes(seeded.admin.key));

  // Keyboard: the first Tab reaches the skip link.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  // Times in the browser's zone, the UTC value on hover.
  const time = await page.locator("tbody time").first();
  assert.ok(!(await time.textContent()).includes("UTC"), "shown in the browser's zone");
  assert.match(await time.getAttribute("title"), /UTC$/);

  // Browse and page notes.
  assert.equal(await page.locator("tbody tr").count(), 50);
  await inspect(page, "notes");
  await Promise.all([page.waitForURL(/cursor=/), page.click("a[rel=next]")]);
  assert.equal(await page.locator("tbody tr").count(), 10);
  await page.goto(`${BASE}/admin/notes?tag=zoo`);
  assert.equal(await page.locator("tbody tr").count(), 1);

  // Search, and see the match marked.
  await page.fill("#q", "platypus");
  await Promise.all([page.waitForURL(/\/admin\/search\?q=platypus/), page.press("#q", "Enter")]);
  // Marked in the title (its own case kept) and in the snippet.
  assert.equal(await page.locator("ol.hits a mark").first().textContent(), "Platypus");
  assert.equal(await page.locator("ol.hits .snippet mark").first().textContent(), "platypus");
  // The tags of the matches, with counts; one narrows the search.
  assert.ok((await page.locator("nav.facets a.tag").count()) >= 1, "tag facets");
  await inspect(page, "search");
  // A typo and a sort, through the form, without JavaScript's help.
  await page.fill("#q", "platypsu");
  await page.selectOption("#sort", "-updated");
  await Promise.all([page.waitForURL(/sort=-updated/), page.press("#q", "Enter")]);
  assert.equal(await page.locator("ol.hits .snippet mark").first().textContent(), "platypus");
  await page.goto(`${BASE}/admin/search?q=platypus`);

  // Open the note, download its attachment.
  await Promise.all([page.waitForURL(/\/admin\/notes\/[0-9a-f-]{36}$/), page.click("ol.hits a")]);
  assert.ok((await page.locator("pre.body").textContent()).includes("<script>"), "the body shows as text");
  await inspect(page, "note");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("a[download]")]);
  const file = await download.path();
  assert.equal(crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex"), seeded.sha256);
  assert.equal(download.suggestedFilename(), "tracks.bin");

  // Create a note through the form: refused first (the reason shown, the
  // typed text kept), then accepted.
  await page.goto(`${BASE}/admin/notes`);
  await Promise.all([page.waitForURL(/\/admin\/notes\/new$/), page.click("text=New note")]);
  await inspect(page, "note-new");
  await page.fill("#title", "Garden diary");
  await page.fill("#tags", "garden <spring>");
  await page.fill("#body", "Sowed tomatoes.\nWatered twice.");
  await page.click("text=Create note");
  await page.waitForSelector("#form-problem");
  assert.ok((await page.textContent("#tags-error")).includes("“<spring>”"), "the refused tag is named");
  assert.equal(await page.inputValue("#tags"), "garden <spring>", "the typed text is kept");
  assert.equal(await page.inputValue("#body"), "Sowed tomatoes.\nWatered twice.");
  await inspect(page, "note-new-refused");
  await page.fill("#tags", "garden, Spring");
  await Promise.all([page.waitForURL(/\/admin\/notes\/[0-9a-f-]{36}\?created=1$/), page.click("text=Create note")]);
  assert.equal((await page.textContent(".notice")).trim(), "The note is created.");
  const created = page.url().match(/notes\/([0-9a-f-]{36})/)[1];
  let stored = (await api("GET", `/api/v1/notes/${created}`)).json;
  assert.equal(stored.title, "Garden diary");
  assert.deepEqual(stored.tags, ["garden", "spring"]);
  assert.equal(stored.body, "Sowed tomatoes.\nWatered twice.", "line breaks as LF, not the CRLF browsers send");

  // Edit it.
  await Promise.all([page.waitForURL(/\/edit$/), page.click("text=Edit this note")]);
  assert.equal(await page.inputValue("#body"), "Sowed tomatoes.\nWatered twice.");
  await inspect(page, "note-edit");
  await page.fill("#title", "Garden diary, week 2");
  await page.fill("#body", "Sowed tomatoes.\nWatered twice.\nFirst shoots!");
  await Promise.all([page.waitForURL(/\?saved=1$/), page.click("text=Save changes")]);
  assert.equal(await page.textContent("h1"), "Garden diary, week 2");
  stored = (await api("GET", `/api/v1/notes/${created}`)).json;
  assert.equal(stored.version, 2);
  assert.equal(stored.body, "Sowed tomatoes.\nWatered twice.\nFirst shoots!");

  // Its history: version 1 beside what changed since, restored and back.
  await Promise.all([page.waitForURL(/\/history$/), page.click("text=History")]);
  await inspect(page, "note-history");
  await Promise.all([page.waitForURL(/\/history\/1$/), page.click(`a[href$="/history/1"]`)]);
  assert.match(await page.textContent("pre.diff"), /\+First shoots!/);
  await inspect(page, "note-revision");
  await Promise.all([page.waitForURL(/\?restored=1$/), page.click("text=Restore version 1")]);
  assert.equal((await page.textContent(".notice")).trim(), "Version 1 is restored, as a new version.");
  stored = (await api("GET", `/api/v1/notes/${created}`)).json;
  assert.equal(stored.version, 3);
  assert.equal(stored.body, "Sowed tomatoes.\nWatered twice.");

  // To the trash and back.
  await Promise.all([page.waitForURL(/\/admin\/trash\?deleted=1$/), page.click("text=Move to the trash")]);
  assert.equal((await api("GET", `/api/v1/notes/${created}`)).status, 404);
  await inspect(page, "trash");
  await Promise.all([page.waitForURL(/\?restored_from_trash=1$/), page.click("form[action$='/restore'] button")]);
  assert.equal((await page.textContent(".notice")).trim(), "The note is back from the trash.");

  // Upload 5 MB through the note's form, download it, compare.
  const big = crypto.randomBytes(5 * 1024 * 1024);
  await page.setInputFiles("#file", { name: "seeds.bin", mimeType: "application/octet-stream", buffer: big });
  await Promise.all([page.waitForURL(/\?uploaded=1$/), page.click(`form[action$="/attachments"] button[type=submit]`)]);
  assert.equal((await page.textContent(".notice")).trim(), "The file is uploaded.");
  await inspect(page, "note-uploaded");
  const listed = (await api("GET", `/api/v1/notes/${created}/attachments`)).json;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].size, big.length);
  const [bigDownload] = await Promise.all([page.waitForEvent("download"), page.click('a[download="seeds.bin"]')]);
  const bigSha = crypto.createHash("sha256").update(fs.readFileSync(await bigDownload.path())).digest("hex");
  assert.equal(bigSha, crypto.createHash("sha256").update(big).digest("hex"), "the 5 MB file came back byte for byte");
  assert.equal(listed[0].sha256, bigSha);

  // Jobs: filter, open the dead one, retry it, see it succeed.
  await page.goto(`${BASE}/admin/jobs`);
  await page.selectOption("#status", "dead");
  await Promise.all([page.waitForURL(/status=dead/), page.click("form.row button")]);
  assert.equal(await page.locator("tbody tr").count(), 1);
  await inspect(page, "jobs");
  await Promise.all([page.waitForURL(new RegExp(`/admin/jobs/${seeded.job.id}$`)), page.click("tbody a")]);
  assert.ok((await page.locator("pre.error").textContent()).includes("storage location is not usable"));
  await inspect(page, "job");
  fs.unlinkSync(BLOCKER);
  await Promise.all([page.waitForURL(/retried=1/), page.click("text=Retry this job")]);
  // The page follows the job it shows while it is queued or running: no
  // reload here.
  await until("the retried job's page shows it succeeded", async () =>
    (await page.locator(".facts .status").textContent()) === "succeeded");
  assert.equal(await page.locator("[data-follow]").count(), 0, "a finished job's page stops following");
  // A job that runs for 4 s: its page, opened while it runs, turns to
  // succeeded by itself.
  const slow = await json("POST", "/api/v1/jobs", { kind: "ping", args: { delay_ms: 4000 } });
  await until("the slow ping runs", async () => (await api("GET", `/api/v1/jobs/${slow.json.id}`)).json.status === "running");
  await page.goto(`${BASE}/admin/jobs/${slow.json.id}`);
  assert.equal(await page.locator(".facts .status").textContent(), "running");
  assert.equal(await page.locator("[data-follow]").count(), 1);
  await until("the slow ping's page shows it succeeded", async () =>
    (await page.locator(".facts .status").textContent()) === "succeeded");
  assert.ok((await page.textContent("main")).includes("pong"), "the result came with it");

  // An admin key is not the master key: no keys page.
  const keysPage = await page.goto(`${BASE}/admin/keys`);
  assert.equal(keysPage.status(), 403);

  // The system page.
  await page.goto(`${BASE}/admin/system`);
  assert.ok((await page.textContent("main")).includes("Readiness checks"));
  await inspect(page, "system");

  // Webhooks: one made through the API, pinged, shown, and its ping sent again.
  const hook = (await json("POST", "/api/v1/webhooks", { url: "https://hooks.example.org/in", events: ["*"] })).json;
  assert.ok(hook.secret.startsWith("whsec_"));
  assert.equal((await api("POST", `/api/v1/webhooks/${hook.id}/ping`)).status, 202);
  await page.goto(`${BASE}/admin/webhooks`);
  assert.ok((await page.textContent("main")).includes("hooks.example.org"));
  assert.ok(!(await page.content()).includes(hook.secret), "the secret is never shown");
  await inspect(page, "webhooks");
  await Promise.all([page.waitForURL(/redelivered=1$/), page.click("text=Send again")]);
  assert.equal((await page.textContent(".notice")).trim(), "The message is queued to be sent again.");
  assert.equal(await page.locator("tbody tr").count(), 2);

  // Phone-sized and dark: readable, no sideways scrolling, still accessible.
  await page.setViewportSize({ width: 375, height: 740 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${BASE}/admin/notes`);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(18, 18, 18)", "dark mode follows the system");
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways scroll");
  await inspect(page, "notes-phone-dark");
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: "light" });

  // A cross-site form post is refused, and creates nothing.
  const before = (await api("GET", "/api/v1/keys")).json.length;
  const [forged] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE}/admin/keys` && r.request().method() === "POST"),
    page.goto(`${evilOrigin}/`),
  ]);
  assert.ok([303, 403].includes(forged.status()), `cross-site post answered ${forged.status()}`);
  assert.equal((await api("GET", "/api/v1/keys")).json.length, before, "no key created");

  // Log out: the session is gone.
  await page.goto(`${BASE}/admin/notes`);
  await Promise.all([page.waitForURL(/\/admin\/login$/), page.click("text=Log out")]);
  await page.goto(`${BASE}/admin/notes`);
  assert.match(page.url(), /\/admin\/login$/);

  // The master key manages keys: create one (shown once), then revoke it.
  await logIn(page, MASTER);
  await page.goto(`${BASE}/admin/keys`);
  await page.fill("#name", "browser key");
  await Promise.all([page.waitForSelector("#new-key"), page.click("text=Create key")]);
  const secret = (await page.textContent("#new-key")).trim();
  assert.match(secret, /^nk_/);
  assert.equal((await api("GET", "/api/v1/notes", undefined, secret)).status, 200);
  await inspect(page, "keys");
  await Promise.all([page.waitForURL(/revoked=1/), page.click('button[aria-label="Revoke browser key"]')]);
  assert.equal((await api("GET", "/api/v1/notes", undefined, secret)).status, 401, "revoked");
  assert.ok(!(await page.content()).includes(secret), "the secret is not shown again");

  // A revoked key's session is refused at once.
  const other = await newContext();
  const otherPage = await other.newPage();
  await logIn(otherPage, seeded.admin.key);
  assert.equal((await api("DELETE", `/api/v1/keys/${seeded.admin.id}`)).status, 204);
  await otherPage.goto(`${BASE}/admin/jobs`);
  assert.match(otherPage.url(), /\/admin\/login$/, "the revoked key's session ended");

  assert.deepEqual(offOrigin, [], "no request left the origin");
  await browser.close();
  evil.close();
  console.log(`admin UI in Chromium: ok; axe clean on ${checked.join(", ")}; screenshots in ${SHOTS}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
