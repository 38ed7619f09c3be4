"""schemathesis hooks for notes-api (loaded through SCHEMATHESIS_HOOKS)."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    # The spec describes the ingest body as an array of notes; on the wire
    # it is one JSON document per line. Anything else (negative cases) goes
    # as a single line, which the server must refuse cleanly.
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()
