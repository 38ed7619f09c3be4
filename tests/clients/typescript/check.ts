// Compiled (never run) against the types openapi-typescript generates from
// /openapi.json (scripts/clients.sh): what a TypeScript client sends and
// reads is typed, and what the server refuses does not compile.
import type { components, paths } from "./notes-api";

type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;
type Note = components["schemas"]["Note"];

// Notes: the body of POST /notes, its 201 a Note with typed fields.
const draft: Json<paths["/api/v1/notes"]["post"]["requestBody"]> = {
  title: "Quokkas",
  tags: ["zoo"],
  metadata: { source: "clients", nested: [1, "two", null, { deeper: true }] },
};
declare const created: Json<paths["/api/v1/notes"]["post"]["responses"][201]>;
const note: Note = created;
const version: number = note.version;
const title: string = note.title;
const fetched: Note = null as unknown as Json<paths["/api/v1/notes/{id}"]["get"]["responses"][200]>;
const patched: Note = null as unknown as Json<paths["/api/v1/notes/{id}"]["patch"]["responses"][200]>;

// Ingest: a JSON array of notes, answered by a report.
const batch: Json<paths["/api/v1/ingest"]["post"]["requestBody"]> = [draft, { title: "Numbat", external_id: "n-1" }];
declare const report: Json<paths["/api/v1/ingest"]["post"]["responses"][200]>;
const created_count: number = report.created;

// Jobs: each kind with its own arguments.
type JobRequest = Json<paths["/api/v1/jobs"]["post"]["requestBody"]>;
const jobs: JobRequest[] = [
  { kind: "add", args: { x: 2, y: 3.5 } },
  { kind: "ping" },
  { kind: "ping", args: { delay_ms: 10 } },
  { kind: "extract_text", args: { attachment_id: "01900000-0000-7000-8000-000000000000" } },
  { kind: "backup", args: { to: "s3://bucket/backups" } },
  { kind: "backup", args: null },
  { kind: "reindex", args: {} },
  { kind: "purge" },
];
// @ts-expect-error: add needs y
const missing: JobRequest = { kind: "add", args: { x: 2 } };
// @ts-expect-error: add takes numbers
const mistyped: JobRequest = { kind: "add", args: { x: "2", y: 3 } };
// @ts-expect-error: no such kind
const unknown: JobRequest = { kind: "rm -rf", args: {} };
// @ts-expect-error: extract_text needs its attachment
const bare: JobRequest = { kind: "extract_text" };
declare const job: Json<paths["/api/v1/jobs"]["post"]["responses"][202]>;
const status: "queued" | "running" | "succeeded" | "failed" | "dead" = job.status;

// Uploads: a multipart form with the file, answered by an attachment.
type Upload = paths["/api/v1/notes/{id}/attachments"]["post"];
const form: NonNullable<Upload["requestBody"]>["content"]["multipart/form-data"] = { file: "bytes" };
declare const uploaded: Json<Upload["responses"][201]>;
const size: number = uploaded.size;

export { batch, bare, created_count, fetched, form, jobs, missing, mistyped, patched, size, status, title, unknown, version };
