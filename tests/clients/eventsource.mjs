// A real EventSource client (the `eventsource` npm package, which follows
// the WHATWG spec: reconnects with Last-Event-ID) against a running server:
// it receives a create, an update and a delete as they happen, then
// resumes after a disconnect with no gap and no duplicate.
//
// usage: BASE=http://127.0.0.1:PORT KEY=MASTER_KEY CLIENTS_NPM=DIR node eventsource.mjs
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(`${process.env.CLIENTS_NPM}/`);
const { EventSource } = require("eventsource");
const { BASE, KEY } = process.env;
const KINDS = ["note.created", "note.updated", "note.deleted", "note.restored"];

async function api(method, path, body) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

// Browsers' EventSource cannot send a key; this client takes a fetch that can.
function open(query, lastEventId) {
  const events = [];
  let waiting = null;
  const es = new EventSource(`${BASE}/api/v1/changes/stream${query}`, {
    fetch: (input, init) =>
      fetch(input, {
        ...init,
        headers: {
          ...init.headers,
          Authorization: `Bearer ${KEY}`,
          ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}),
        },
      }),
  });
  for (const kind of KINDS) {
    es.addEventListener(kind, (e) => {
      events.push({ type: e.type, id: e.lastEventId, data: JSON.parse(e.data) });
      if (waiting && events.length >= waiting.n) waiting.resolve();
    });
  }
  const opened = new Promise((resolve, reject) => {
    es.onopen = resolve;
    es.onerror = (e) => reject(new Error(`stream error: ${e.message ?? e.code}`));
  });
  const take = (n, ms = 15000) =>
    new Promise((resolve, reject) => {
      if (events.length >= n) return resolve();
      waiting = { n, resolve };
      setTimeout(() => reject(new Error(`only ${events.length} of ${n} events`)), ms);
    }).then(() => events.splice(0, n));
  return { es, opened, take, events };
}

// Start from the head: what is there already is not this test's.
let page = await api("GET", "/api/v1/changes?limit=1000");
while (page.has_more) page = await api("GET", `/api/v1/changes?limit=1000&since=${page.next_cursor}`);
const first = open(`?since=${page.next_cursor}`);
await first.opened;

const note = await api("POST", "/api/v1/notes", { title: "EventSource", body: "live" });
await api("PATCH", `/api/v1/notes/${note.id}`, { body: "edited" });
await api("DELETE", `/api/v1/notes/${note.id}`);
const live = await first.take(3);
assert.deepEqual(live.map((e) => e.type), ["note.created", "note.updated", "note.deleted"]);
for (const e of live) {
  assert.equal(e.data.note_id, note.id);
  assert.equal(e.id, e.data.cursor, "the event id is the change's cursor");
}
const lastId = live[2].id;
first.es.close();

const written = [];
for (let i = 0; i < 50; i++) written.push((await api("POST", "/api/v1/notes", { title: `away ${i}`, body: "x" })).id);
const second = open("", lastId);
await second.opened;
const resumed = await second.take(50);
assert.deepEqual(resumed.map((e) => e.data.note_id), written, "all 50, in order");
assert.ok(resumed.every((e) => e.type === "note.created"));
await new Promise((r) => setTimeout(r, 500));
assert.equal(second.events.length, 0, "no duplicate after the 50");
second.es.close();
console.log("eventsource: live create/update/delete, then 50 resumed after Last-Event-ID, no gap, no duplicate");
