"""The Python client openapi-python-client generates from /openapi.json,
used against a running server (scripts/clients.sh).

Every request goes through the generated functions and models, and every
answer is checked as the typed value the client hands back: a field the
document left untyped, or a response it dropped, fails here.

usage: BASE=http://127.0.0.1:PORT KEY=MASTER_KEY PYTHONPATH=GENERATED python_client.py
"""

import hashlib
import io
import json
import os
import time
import zipfile

from notes_api_client import AuthenticatedClient
from notes_api_client.api.attachments import content, upload
from notes_api_client.api.export import export_notes
from notes_api_client.api.ingest import ingest
from notes_api_client.api.jobs import create_job, get_job
from notes_api_client.api.notes import create_note, get_note, update
from notes_api_client.api.search import search
from notes_api_client.models import (
    AddArgs,
    AddJobRequest,
    Attachment,
    IngestReport,
    Job,
    JobKind,
    JobStatus,
    Metadata,
    Note,
    NoteDraft,
    NotePatch,
    PingJobRequest,
    Problem,
    SearchResponse,
    UploadForm,
)
from notes_api_client.types import File

passed = 0


def check(condition, what, value=None):
    global passed
    if not condition:
        raise AssertionError(f"{what}: got {value!r}")
    passed += 1


# raise_on_unexpected_status: an answer the document does not list fails.
client = AuthenticatedClient(
    base_url=os.environ["BASE"],
    token=os.environ["KEY"],
    raise_on_unexpected_status=True,
)

# Create: the note comes back as a Note, metadata of every JSON type intact.
metadata = {
    "source": "clients",
    "nested": {"list": [1, 2.5, "three", None, True, {"deeper": []}]},
}
draft = NoteDraft(
    title="Quokkas of Rottnest",
    body="A small marsupial that seems to smile.",
    tags=["Zoo", "island"],
    metadata=Metadata.from_dict(metadata),
)
created = create_note.sync_detailed(client=client, body=draft)
note = created.parsed
check(isinstance(note, Note), "POST /notes answers a Note", note)
check(created.status_code == 201, "POST /notes answers 201", created.status_code)
check(
    (note.title, note.body, note.tags, note.version) == (draft.title, draft.body, ["zoo", "island"], 1),
    "the created note holds what was sent (tags lower-cased)",
    note,
)
check(isinstance(note.metadata, Metadata), "metadata is a Metadata", note.metadata)
check(note.metadata.to_dict() == metadata, "metadata comes back as sent", note.metadata.to_dict())

# Get: the same note.
fetched = get_note.sync(id=str(note.id), client=client)
check(isinstance(fetched, Note), "GET /notes/{id} answers a Note", fetched)
check(fetched.to_dict() == note.to_dict(), "GET answers the note as created", fetched)

# Patch with If-Match: applies at the right version, 412 at a stale one.
patched = update.sync(id=str(note.id), client=client, body=NotePatch(tags=["zoo", "marsupial"]), if_match='"1"')
check(isinstance(patched, Note), "PATCH answers a Note", patched)
check(
    (patched.version, patched.tags, patched.title) == (2, ["zoo", "marsupial"], note.title),
    "PATCH changed the tags only and bumped the version",
    patched,
)
stale = update.sync(id=str(note.id), client=client, body=NotePatch(title="Lost update"), if_match='"1"')
check(isinstance(stale, Problem) and stale.status == 412, "PATCH at a stale version is a 412 Problem", stale)

# Search: the note is found, as a typed hit.
found = search.sync(client=client, q="quokkas")
check(isinstance(found, SearchResponse), "search answers a SearchResponse", found)
check([hit.id for hit in found.hits] == [note.id], "search finds the note", found.hits)
check(found.hits[0].tags == ["zoo", "marsupial"], "the hit carries the patched tags", found.hits[0])

# Ingest a batch as a JSON array; sent again it changes nothing.
batch = [
    NoteDraft(title=f"Numbat {i}", body=f"A termite eater, number {i}.", external_id=f"clients-{i}", tags=["wildlife"])
    for i in range(3)
]
report = ingest.sync(client=client, body=batch)
check(isinstance(report, IngestReport), "ingest answers an IngestReport", report)
check(
    (report.received, report.created, report.updated, report.unchanged) == (3, 3, 0, 0),
    "ingest created the batch",
    report,
)
again = ingest.sync(client=client, body=batch)
check((again.received, again.unchanged) == (3, 3), "the same batch again is unchanged", again)
refused = ingest.sync(client=client, body=[NoteDraft(title="Wombat burrows"), NoteDraft(title="   ")])
check(isinstance(refused, Problem) and refused.status == 422, "a bad batch is a 422 Problem", refused)
check(
    [(e.field, e.line) for e in refused.errors] == [("title", 2)],
    "the problem names the bad element",
    refused.errors,
)
wombats = search.sync(client=client, q="wombat")
check(wombats.total == 0, "the refused batch wrote nothing", wombats.total)

# Upload a file as multipart (the client's File type), then read it back.
data = b"".join(b"Line %05d: the quokka lives on Rottnest Island.\n" % i for i in range(1100))
check(50_000 < len(data) < 60_000, "the file is a real multipart upload under 60 KB", len(data))
attachment = upload.sync(
    id=str(note.id),
    client=client,
    body=UploadForm(file=File(payload=io.BytesIO(data), file_name="zoo.txt", mime_type="text/plain")),
    filename="zoo.txt",
)
check(isinstance(attachment, Attachment), "a multipart upload answers an Attachment", attachment)
check(
    (attachment.note_id, attachment.filename, attachment.size, attachment.sha256)
    == (note.id, "zoo.txt", len(data), hashlib.sha256(data).hexdigest()),
    "the attachment is the file sent",
    attachment,
)
check(attachment.content_type.startswith("text/plain"), "the part's type is kept", attachment.content_type)
back = content.sync_detailed(id=str(attachment.id), client=client)
check(back.status_code == 200 and back.content == data, "the content is the bytes sent", len(back.content))

# The same operation with a raw body.
raw = upload.sync(id=str(note.id), client=client, body=File(payload=io.BytesIO(b"\x00\x01raw")), filename="raw.bin")
check(isinstance(raw, Attachment) and (raw.filename, raw.size) == ("raw.bin", 5), "a raw upload", raw)

# Export: the zip comes back as a File, and it is a zip.
exported = export_notes.sync_detailed(client=client)
check(exported.status_code == 200, "GET /export answers 200", exported.status_code)
check(
    isinstance(exported.parsed, File) and exported.parsed.payload.read() == exported.content,
    "the zip is handed back as a File",
    type(exported.parsed),
)
with zipfile.ZipFile(io.BytesIO(exported.content)) as z:
    manifest = json.loads(z.read(z.namelist()[-1]))
check(manifest["notes"] >= 1 and manifest["format"] == "markdown", "the zip ends with its manifest", manifest)

# Jobs: typed arguments per kind; the worker's result comes back.
job = create_job.sync(client=client, body=AddJobRequest(kind="add", args=AddArgs(x=2, y=3)))
check(isinstance(job, Job) and job.kind == JobKind.ADD, "POST /jobs answers a Job", job)
check(job.args.to_dict() == {"x": 2, "y": 3}, "the job holds its arguments", job.args)
deadline = time.monotonic() + 30
while job.status in (JobStatus.QUEUED, JobStatus.RUNNING) and time.monotonic() < deadline:
    time.sleep(0.1)
    job = get_job.sync(id=str(job.id), client=client)
check((job.status, job.result) == (JobStatus.SUCCEEDED, 5), "the add job ran: 2 + 3", job)
ping = create_job.sync(client=client, body=PingJobRequest(kind="ping"))
check(isinstance(ping, Job) and ping.kind == JobKind.PING, "a kind without arguments", ping)

print(f"python-client: {passed} passed, 0 failed")
