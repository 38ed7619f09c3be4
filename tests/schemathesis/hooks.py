"""schemathesis hooks for notes-api (loaded through SCHEMATHESIS_HOOKS)."""

import json
import re

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import RejectedPositiveData


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    # The spec describes the ingest body as an array of notes; on the wire
    # it is one JSON document per line. Anything else (negative cases) goes
    # as a single line, which the server must refuse cleanly.
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    # Two refusals of schema-valid requests that no schema can rule out
    # (schemathesis.toml says why they stay); every other failure counts.
    if _is_control_character_in_part_header(failure, case, response):
        return False
    if _is_unread_filename(failure, case, response):
        return False
    refused = _refused_fields(failure, case, response)
    if not refused:
        return True
    return not (
        all(_is_backup_destination(case, field) for field in refused)
        or all(_is_whole_float(case.body, field) for field in refused)
        or all(_is_search_without_query(case, field) for field in refused)
    )


def _is_search_without_query(case, field):
    # `q` may be left out only with a sort other than relevance: a
    # dependency between two parameters that OpenAPI cannot state.
    if (case.method.upper(), case.path, field) != ("GET", "/api/v1/search", "q"):
        return False
    query = case.query or {}
    return not str(query.get("q") or "").strip() and query.get("sort") in (None, "relevance")


def _is_unread_filename(failure, case, response):
    # `?filename=` is required for a raw upload; a multipart upload names
    # its file in its part and does not read the parameter, so a bad or
    # missing one (the only schema violation of the request) passes.
    meta = case.meta
    return (
        isinstance(failure, AcceptedNegativeData)
        and 200 <= response.status_code < 300
        and (case.method.upper(), case.path) == ("POST", "/api/v1/notes/{id}/attachments")
        and (case.media_type or "").startswith("multipart/form-data")
        and meta is not None
        and [loc for loc in ParameterLocation if meta.is_negative_at(loc)] == [ParameterLocation.QUERY]
    )


# What HTTP forbids in a header value (RFC 9110 5.5): controls but tab.
_HEADER_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _is_control_character_in_part_header(failure, case, response):
    # A multipart field name travels in its part's Content-Disposition
    # header, and the client sends the generated name's control characters
    # as they are: the part cannot be parsed, and the upload is a 400.
    return (
        isinstance(failure, RejectedPositiveData)
        and response.status_code == 400
        and (case.media_type or "").startswith("multipart/form-data")
        and isinstance(case.body, dict)
        and any(_HEADER_CONTROLS.search(name) for name in case.body)
    )


def _refused_fields(failure, case, response):
    """The fields a 422 names when a schema-valid request was refused."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return []
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return []
    return [e.get("field") for e in errors if isinstance(e, dict)]


def _is_backup_destination(case, field):
    # A backup may only go where the operator allows
    # (NOTES_BACKUP_DESTINATIONS), a list no schema states.
    body = case.body if isinstance(case.body, dict) else {}
    return (
        (case.method.upper(), case.path) == ("POST", "/api/v1/jobs")
        and body.get("kind") == "backup"
        and field == "args.to"
        and isinstance(body.get("args"), dict)
        and isinstance(body["args"].get("to"), str)
    )


def _is_whole_float(body, field):
    # JSON Schema counts 2.0 as an integer; the server reads integers as
    # written, and refuses 2.0 where it takes one (422 naming the field).
    value = body
    for name in (field or "").split("."):
        if not isinstance(value, dict) or name not in value:
            return False
        value = value[name]
    return isinstance(value, float) and value.is_integer()
