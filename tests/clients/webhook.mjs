// A webhook receiver in Node with the Standard Webhooks npm library
// (`standardwebhooks`) against a running server: every delivery of a
// created note, an update and a ping verifies with the webhook's secret,
// a tampered body does not, and the same message keeps its id on a
// redelivery.
//
// usage: BASE=http://127.0.0.1:PORT KEY=MASTER_KEY CLIENTS_NPM=DIR node webhook.mjs
// (the server allows loopback receivers: NOTES_WEBHOOK_ALLOW_NETWORKS)
import { createRequire } from "node:module";
import { createServer } from "node:http";
import assert from "node:assert/strict";

const require = createRequire(`${process.env.CLIENTS_NPM}/`);
const { Webhook, WebhookVerificationError } = require("standardwebhooks");
const { BASE, KEY } = process.env;

async function api(method, path, body) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

const received = [];
let wake = null;
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    res.writeHead(204).end();
    if (wake) wake();
  });
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));

async function deliveries(n) {
  const deadline = Date.now() + 30_000;
  while (received.length < n) {
    assert.ok(Date.now() < deadline, `${received.length} of ${n} deliveries arrived`);
    await new Promise((ok) => {
      wake = ok;
      setTimeout(ok, 200);
    });
  }
  return received.slice(0, n);
}

const hook = await api("POST", "/api/v1/webhooks", {
  url: `http://127.0.0.1:${server.address().port}/in`,
  events: ["note.created", "note.updated"],
});
assert.match(hook.secret, /^whsec_/);
const wh = new Webhook(hook.secret);

const note = await api("POST", "/api/v1/notes", { title: "from node", body: "b" });
await deliveries(1);
await api("PATCH", `/api/v1/notes/${note.id}`, { body: "changed" });
await deliveries(2);
const ping = await api("POST", `/api/v1/webhooks/${hook.id}/ping`);
const got = await deliveries(3);

const types = got.map((d) => wh.verify(d.body, d.headers).type);
assert.deepEqual(types, ["note.created", "note.updated", "ping"]);
for (const d of got.slice(0, 2)) {
  assert.equal(wh.verify(d.body, d.headers).data.note_id, note.id);
}
// The library refuses what was not signed with this secret, or was changed.
assert.throws(() => wh.verify(got[0].body.replace("note.created", "note.deleted"), got[0].headers), WebhookVerificationError);
const other = new Webhook(`whsec_${Buffer.alloc(24, 7).toString("base64")}`);
assert.throws(() => other.verify(got[0].body, got[0].headers), WebhookVerificationError);

// A redelivery: the same message id, signed again.
await api("POST", `/api/v1/webhooks/${hook.id}/deliveries/${ping.id}/redeliver`);
const again = (await deliveries(4))[3];
assert.equal(again.headers["webhook-id"], got[2].headers["webhook-id"]);
assert.equal(wh.verify(again.body, again.headers).type, "ping");

await api("DELETE", `/api/v1/webhooks/${hook.id}`);
server.close();
console.log("standardwebhooks (npm): 4 deliveries verified, tampering and another secret refused");
