"""Fails when a client generator left out a schema or an operation.

usage: generator_warnings.py python|typescript LOG

openapi-python-client still exits 0 when it drops what it cannot parse: a
schema (and every schema that refers to it), an operation, a response. It
says so in its output, which is what this reads. openapi-typescript prints
nothing but its banner and the file it wrote unless something is wrong.
"""

import re
import sys

# The one warning the document causes on purpose: openapi-python-client
# writes no NDJSON, so it generates POST /api/v1/ingest with the JSON-array
# body and says it skipped the other body.
PYTHON_ALLOWED = {
    (
        "WARNING parsing POST /api/v1/ingest within ingest.",
        "Unsupported content type application/x-ndjson",
    ),
}

# How openapi-python-client (0.29) starts a report of something left out.
PYTHON_REPORTS = re.compile(
    r"^(WARNING|ERROR|Unable to|Cannot|Could not|Failure to)\b|will not be generated|will be omitted|removal of"
)

TYPESCRIPT_QUIET = re.compile(r"^(✨ openapi-typescript \S+|🚀 .+ → .+)$")


def python_problems(log):
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    problems = []
    for i, line in enumerate(lines):
        if not PYTHON_REPORTS.search(line):
            continue
        reason = lines[i + 1] if i + 1 < len(lines) else ""
        if (line, reason) not in PYTHON_ALLOWED:
            problems.append(f"{line} ({reason})")
    if not problems and "Warning(s) encountered" in log and not any(
        header in log for header, _ in PYTHON_ALLOWED
    ):
        problems.append("a warning in a form this check does not know")
    return problems


def typescript_problems(log):
    return [line for line in log.splitlines() if line.strip() and not TYPESCRIPT_QUIET.match(line.strip())]


def main():
    generator, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        log = f.read()
    problems = {"python": python_problems, "typescript": typescript_problems}[generator](log)
    if problems:
        print(f"{generator} generator left something out ({path}):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"{generator} generator: nothing left out")


if __name__ == "__main__":
    main()
