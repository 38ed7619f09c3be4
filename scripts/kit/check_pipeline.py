#!/usr/bin/env python3
"""Policy assertions on the release pipeline and the cluster add-ons, offline.

What actionlint cannot know about this project: every third-party action is
pinned to a full commit SHA (with its version in a comment), every workflow
and every job declares least-privilege permissions, only the promote job can
write to the repository, the release cross-compiles both targets without
QEMU and pushes a multi-arch image with SBOM and provenance and never
`latest`, Trivy gates on fixable HIGH/CRITICAL findings before cosign signs
the digest, the promote commit says [skip ci], CI runs exactly the
README's test command, the image's name comes from deploy/image.env checked
against the lower-cased repository, and a release tag's run never shares a
concurrency group with main (or another tag). `--self-test` breaks each rule in a copy of the
workflows and fails unless the checker notices.

`cluster` checks the add-ons' values: Traefik's HTTP->HTTPS redirect key for
the chart k3s ships, the kube-prometheus-stack selectors and Grafana sidecar
that pick up the kit's ServiceMonitor, PrometheusRule and dashboard, and the
two Let's Encrypt issuers in both solver variants.

usage: check_pipeline.py workflows DIR [--readme README.md] [--self-test]
       check_pipeline.py run-scripts DIR OUTDIR   (each `run:` as a bash file, for shellcheck)
       check_pipeline.py image --repo DIR   (one image name: deploy/image.env and its copies)
       check_pipeline.py renovate --repo DIR   (renovate.json matches what it pins, then its self-test)
       check_pipeline.py cluster --traefik RENDERED --kps VALUES
             --issuers RENDERED --issuers-dns01 RENDERED --overlay RENDERED
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import yaml

SHA_REF = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)\s*(#.*)?$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\b")
RUNNERS = {"ubuntu-24.04"}
LEAST_TOP = ({}, {"contents": "read"})
TARGETS = ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu")


class Report:
    def __init__(self, quiet=False):
        self.errors: list[str] = []
        self.quiet = quiet

    def fail(self, what):
        """A failed item of a rule whose passing items are summed up in one ok line."""
        self.check(False, what)

    def check(self, cond, what):
        if cond:
            if not self.quiet:
                print(f"  ok: {what}")
        else:
            self.errors.append(what)
            if not self.quiet:
                print(f"FAIL: {what}")
        return bool(cond)


def triggers(wf):
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {k: None for k in on}
    return on or {}


def steps(job):
    return job.get("steps") or []


def step_uses(step, action):
    return str(step.get("uses", "")).split("@")[0] == action


def all_steps(wf):
    for name, job in (wf.get("jobs") or {}).items():
        for st in steps(job):
            yield name, job, st


def runs(job):
    return "\n".join(str(st.get("run", "")) for st in steps(job))


def needs(job):
    n = job.get("needs") or []
    return [n] if isinstance(n, str) else list(n)


def ancestors(jobs, name):
    seen, todo = set(), list(needs(jobs[name]))
    while todo:
        n = todo.pop()
        if n not in seen and n in jobs:
            seen.add(n)
            todo.extend(needs(jobs[n]))
    return seen


def check_workflows(files: dict[str, tuple[str, dict]], readme: str | None, r: Report):
    """files: {file name: (raw text, parsed YAML)}."""
    for fname in ("ci.yml", "release.yml", "promote.yml"):
        r.check(fname in files, f"{fname} exists")
    if r.errors:
        return

    # ---- pins and permissions, every workflow -----------------------------------
    pinned, before = 0, len(r.errors)
    for fname, (text, wf) in sorted(files.items()):
        for no, line in enumerate(text.splitlines(), 1):
            m = USES_LINE.match(line)
            if not m or m.group(1).startswith("./"):
                continue
            ref, comment = m.group(1), m.group(2) or ""
            if ref.startswith("docker://"):
                if "@sha256:" not in ref:
                    r.fail(f"{fname}:{no}: docker action {ref} pinned by digest")
            elif not SHA_REF.match(ref):
                r.fail(f"{fname}:{no}: {ref} pinned to a full commit SHA")
            elif not VERSION_COMMENT.search(comment):
                r.fail(f"{fname}:{no}: {ref.split('@')[0]} has its version in a comment")
            else:
                pinned += 1
        # The parsed view too: a `uses:` the line scan missed (flow style, quotes).
        for job_name, job, st in all_steps(wf):
            ref = str(st.get("uses", ""))
            if ref and not ref.startswith(("./", "docker://")) and not SHA_REF.match(ref):
                r.fail(f"{fname}: job {job_name}: {ref} pinned to a full commit SHA")
        top = wf.get("permissions", "<missing>")
        r.check(top in LEAST_TOP, f"{fname}: top-level permissions are {{}} or contents: read (got {top!r})")
        for job_name, job in (wf.get("jobs") or {}).items():
            if not isinstance(job.get("permissions"), dict):
                r.fail(f"{fname}: job {job_name} declares its own permissions")
            if "runs-on" in job and job["runs-on"] not in RUNNERS:
                r.fail(f"{fname}: job {job_name} runs on {sorted(RUNNERS)} (got {job['runs-on']!r})")
            if "runs-on" in job and not isinstance(job.get("timeout-minutes"), int):
                r.fail(f"{fname}: job {job_name} has a timeout")
        if "pull_request_target" in triggers(wf):
            r.fail(f"{fname}: no pull_request_target trigger")
        if ("setup-qemu-action" in text or "binfmt" in text
                or any("setup-qemu-action" in str(st.get("uses", "")) for _, _, st in all_steps(wf))):
            r.fail(f"{fname}: no QEMU (setup-qemu-action, binfmt)")
        for job_name, job, st in all_steps(wf):
            if re.search(r"\$\{\{\s*(github\.event\.)?inputs\.", str(st.get("run", ""))):
                r.fail(f"{fname}: job {job_name}: no workflow input spliced into a run script (pass it through env)")
    r.check(pinned > 0 and len(r.errors) == before,
            f"every third-party action pinned to a full commit SHA with its version in a comment ({pinned} uses); "
            "every job with its own permissions, on ubuntu-24.04, with a timeout; no QEMU, no pull_request_target, "
            "no input spliced into a script")

    # Only the promote job may write to the repository.
    writers = [(f, n) for f, (_, wf) in files.items() for n, j in (wf.get("jobs") or {}).items()
               if (j.get("permissions") or {}).get("contents") == "write"]
    r.check(writers == [("promote.yml", "promote")], f"contents: write only in promote.yml's promote job (got {writers})")

    # ---- ci.yml ------------------------------------------------------------------
    text, ci = files["ci.yml"]
    on = triggers(ci)
    r.check("workflow_call" in on, "ci.yml: callable (workflow_call), so release.yml runs the same tests")
    r.check("main" in ((on.get("push") or {}).get("branches") or []), "ci.yml: runs on pushes to main")
    r.check("main" in ((on.get("pull_request") or {}).get("branches") or []), "ci.yml: runs on pull requests to main")
    r.check((ci.get("concurrency") or {}).get("cancel-in-progress") is True, "ci.yml: superseded runs are cancelled")
    jobs = ci.get("jobs") or {}
    test_cmd = "./scripts/test.sh"
    if readme is not None:
        r.check(f"\n{test_cmd}\n" in readme, f"README.md: the test command is {test_cmd}")
    runners = [n for n, j in jobs.items() if test_cmd in [line.strip() for line in runs(j).splitlines()]]
    r.check(len(runners) == 1, f"ci.yml: one job runs exactly `{test_cmd}` (got {runners})")
    if runners:
        job = jobs[runners[0]]
        r.check(job.get("timeout-minutes") == 60, "ci.yml: the test job times out after 60 minutes")
        svc = job.get("services") or {}
        ports = {name: [str(p) for p in (s.get("ports") or [])] for name, s in svc.items()}
        r.check("5432:5432" in ports.get("postgres", []), "ci.yml: PostgreSQL service on 127.0.0.1:5432")
        r.check(str((svc.get("postgres") or {}).get("env", {}).get("POSTGRES_PASSWORD")) == "postgres",
                "ci.yml: PostgreSQL accepts postgres/postgres (provision.sh's PG_URL)")
        r.check("6379:6379" in ports.get("redis", []), "ci.yml: Redis service on 127.0.0.1:6379")
        cached = "\n".join(str((st.get("with") or {}).get("path", "")) for st in steps(job) if step_uses(st, "actions/cache"))
        r.check("~/.cache/notes-api" in cached.split() and "~/.cargo" in cached,
                "ci.yml: caches ~/.cache/notes-api and ~/.cargo with actions/cache")

    # ---- release.yml ---------------------------------------------------------------
    text, rel = files["release.yml"]
    on = triggers(rel)
    r.check("main" in ((on.get("push") or {}).get("branches") or []) and "v*.*.*" in ((on.get("push") or {}).get("tags") or []),
            "release.yml: on pushes to main and v*.*.* tags")
    jobs = rel.get("jobs") or {}
    tests = [n for n, j in jobs.items() if j.get("uses") == "./.github/workflows/ci.yml"]
    r.check(len(tests) == 1, "release.yml: reuses ci.yml (workflow_call) for the tests")

    builders = [n for n, j in jobs.items() for st in steps(j) if step_uses(st, "docker/build-push-action")]
    r.check(len(builders) == 1, "release.yml: one job builds and pushes the image")
    if builders and tests:
        b = builders[0]
        job = jobs[b]
        r.check(tests[0] in ancestors(jobs, b), f"release.yml: {b} needs the tests")
        script = runs(job)
        envs = dict(job.get("env") or {})
        for st in steps(job):
            envs.update(st.get("env") or {})
        cargo_lines = [line for line in script.splitlines() if re.search(r"\bcargo\b.*\bbuild\b", line)]
        r.check(cargo_lines and all("--target" in line for line in cargo_lines), "release.yml: cargo builds with --target")
        r.check(all(t in script for t in TARGETS) and re.search(r"rustup target add[^\n]*aarch64-unknown-linux-gnu", script),
                f"release.yml: cross-compiles {' and '.join(TARGETS)} (rustup target add)")
        r.check(envs.get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER") == "aarch64-linux-gnu-gcc"
                and "gcc-aarch64-linux-gnu" in script, "release.yml: arm64 linked by gcc-aarch64-linux-gnu, not emulated")
        r.check("+crt-static" in str(envs.get("RUSTFLAGS", "")), "release.yml: static binaries (RUSTFLAGS=-C target-feature=+crt-static)")
        bp = next(st for st in steps(job) if step_uses(st, "docker/build-push-action"))
        w = bp.get("with") or {}
        platforms = {p.strip() for p in str(w.get("platforms", "")).split(",")}
        r.check(platforms == {"linux/amd64", "linux/arm64"}, "release.yml: buildx --platform linux/amd64,linux/arm64")
        out = str(w.get("outputs", ""))
        r.check("push=true" in out and "push-by-digest=true" in out and "tags" not in w and w.get("push") is not True,
                "release.yml: pushes by digest, untagged, until scanned and signed")
        r.check(str(w.get("provenance")) == "mode=max", "release.yml: provenance: mode=max")
        r.check(w.get("sbom") is True, "release.yml: sbom: true")
        r.check(str(w.get("file", "")) == "Dockerfile.release", "release.yml: image from Dockerfile.release (prebuilt binaries)")
        meta = [st for st in steps(job) if step_uses(st, "docker/metadata-action")]
        mw = (meta[0].get("with") or {}) if meta else {}
        name_steps = [st for st in steps(job) if "deploy/image.env" in str(st.get("run", ""))
                      and "${GITHUB_REPOSITORY,,}" in str(st.get("run", "")) and "GITHUB_ENV" in str(st.get("run", ""))]
        r.check(meta and str(mw.get("images", "")).strip() == "${{ env.IMAGE }}" and name_steps
                and steps(job).index(name_steps[0]) < steps(job).index(meta[0]),
                "release.yml: pushes to deploy/image.env's NOTES_IMAGE, checked equal to ghcr.io/<repository, "
                "lower-cased> (GHCR refuses upper case) before the metadata step")
        r.check(str((job.get("outputs") or {}).get("image", "")).startswith("${{ steps."),
                "release.yml: the build job outputs the image name for the later jobs")
        r.check(meta and "latest=false" in str(mw.get("flavor", "")).replace(" ", ""), "release.yml: never tags latest (flavor latest=false)")
        tags = str(mw.get("tags", ""))
        r.check("latest" not in tags, "release.yml: no latest tag rule")
        r.check("type=semver,pattern={{version}}" in tags and "type=semver,pattern={{major}}.{{minor}}" in tags,
                "release.yml: X.Y.Z and X.Y tags on release tags")
        r.check(re.search(r"tag=sha-\$\{GITHUB_SHA(::12)?\}-\$\{?ts\}?", script) and "%ct" in script and "type=raw" in tags,
                "release.yml: sortable sha-<commit>-<commit unix time> tag")
        r.check(any(str(o).strip().startswith("${{ steps.") and k == "digest" for k, o in (job.get("outputs") or {}).items()),
                "release.yml: the build job outputs the digest")

    scanners = [n for n, j in jobs.items() for st in steps(j) if step_uses(st, "aquasecurity/trivy-action")]
    r.check(len(scanners) == 1, "release.yml: a Trivy job")
    signers = [n for n, j in jobs.items() if re.search(r"cosign sign --yes \S*@\$\{?DIGEST\}?", runs(j))]
    r.check(len(signers) == 1, "release.yml: cosign sign --yes <image>@<digest>")
    if scanners:
        s = scanners[0]
        st = next(st for st in steps(jobs[s]) if step_uses(st, "aquasecurity/trivy-action"))
        w = st.get("with") or {}
        r.check(str(w.get("exit-code")) == "1", "release.yml: Trivy exit-code 1")
        r.check(str(w.get("severity", "")).replace(" ", "") == "HIGH,CRITICAL", "release.yml: Trivy severity HIGH,CRITICAL")
        r.check(w.get("ignore-unfixed") is True, "release.yml: Trivy ignore-unfixed: true")
        r.check("@${{ needs." in str(w.get("image-ref", "")), "release.yml: Trivy scans the pushed digest, not a tag")
        r.check(builders and builders[0] in ancestors(jobs, s), "release.yml: the scan runs after the push")
    if signers:
        g = signers[0]
        perms = jobs[g].get("permissions") or {}
        r.check(perms.get("id-token") == "write", "release.yml: the sign job has id-token: write (keyless)")
        r.check(any(step_uses(st, "sigstore/cosign-installer") for st in steps(jobs[g])), "release.yml: cosign from sigstore/cosign-installer")
        r.check(scanners and scanners[0] in ancestors(jobs, g), "release.yml: only a scanned digest is signed")
        taggers = [n for n, j in jobs.items() if "imagetools create" in runs(j)]
        r.check(taggers and all(g in ancestors(jobs, t) for t in taggers),
                "release.yml: tags (which Flux's ImagePolicy follows) are set only after the signature")
        handover = [n for n, j in jobs.items() for st in steps(j)
                    if step_uses(st, "actions/upload-artifact") and (st.get("with") or {}).get("name") == "release-digest"]
        r.check(len(handover) == 1 and g in ancestors(jobs, handover[0]),
                "release.yml: the signed digest is handed to promote (artifact release-digest) after signing")
    idtoken = [n for n, j in jobs.items() if (j.get("permissions") or {}).get("id-token") == "write"]
    r.check(idtoken == signers, f"release.yml: id-token: write only where cosign signs (got {idtoken})")

    # One image name: never ghcr.io/${{ github.repository }} as is (upper case
    # in an owner or repository name is refused by GHCR), every job using
    # IMAGE gets it from the build job or computes it lower-cased.
    for fname, (text, wf) in sorted(files.items()):
        if re.search(r"ghcr\.io/\$\{\{\s*github\.repository\s*\}\}", text):
            r.fail(f"{fname}: ghcr.io/${{{{ github.repository }}}} is not lower-cased (GHCR refuses upper case)")
        for job_name, job in (wf.get("jobs") or {}).items():
            uses_image = "IMAGE" in runs(job) or any("env.IMAGE" in str(st.get("with", "")) for st in steps(job))
            sets_image = "IMAGE" in (job.get("env") or {}) or any(
                re.search(r"IMAGE=.*>>\s*\"\$GITHUB_ENV\"", str(st.get("run", ""))) for st in steps(job))
            if uses_image and not sets_image:
                r.fail(f"{fname}: job {job_name} uses IMAGE and neither sets it nor gets it from the build job")
    # Concurrency: a pending v*.*.* run must never be replaced by a push to
    # main (GitHub keeps one pending run per group), nor by the next tag.
    group = str((rel.get("concurrency") or {}).get("group", ""))
    cancel = (rel.get("concurrency") or {}).get("cancel-in-progress")

    def group_for(ref, ref_type, ref_name):
        ctx = {"github.ref": ref, "github.ref_type": ref_type, "github.ref_name": ref_name, "github.workflow": "Release"}
        out = re.sub(r"\$\{\{\s*([a-z_.]+)\s*\}\}", lambda m: ctx.get(m.group(1), "\0UNKNOWN\0"), group)
        return None if "\0UNKNOWN\0" in out else out
    main_g = group_for("refs/heads/main", "branch", "main")
    tag_gs = [group_for(f"refs/tags/v1.2.{n}", "tag", f"v1.2.{n}") for n in (3, 4)]
    r.check(None not in [main_g] + tag_gs and main_g not in tag_gs and tag_gs[0] != tag_gs[1] and cancel is False,
            f"release.yml: concurrency groups main: {main_g!r}, tags: {tag_gs[0]!r}, {tag_gs[1]!r}: a tag run never "
            "shares a group with main or another tag (a push to main would replace it while pending), and nothing "
            "is cancelled in progress")
    waits = [st for st in steps(jobs.get(builders[0], {}) if builders else {}) if "github.ref_type == 'tag'" in str(st.get("if", ""))
             and "gh run list" in str(st.get("run", "")) and "--branch main" in str(st.get("run", ""))]
    r.check(bool(waits), "release.yml: a tag run waits for main's run of the same commit (then reuses its image)")

    # ---- promote.yml ----------------------------------------------------------------
    text, pro = files["promote.yml"]
    on = triggers(pro)
    wr = on.get("workflow_run") or {}
    r.check(wr.get("workflows") == ["Release"] and "completed" in (wr.get("types") or [])
            and (wr.get("branches") or []) == ["main"], "promote.yml: on completed Release runs of main")
    r.check("digest" in ((on.get("workflow_dispatch") or {}).get("inputs") or {}), "promote.yml: workflow_dispatch with a digest input")
    jobs = pro.get("jobs") or {}
    promoters = [n for n, j in jobs.items() if "scripts/promote.sh" in runs(j)]
    r.check(len(promoters) == 1, "promote.yml: runs scripts/promote.sh")
    if promoters:
        job = jobs[promoters[0]]
        script = runs(job)
        cond = str(job.get("if", ""))
        r.check("conclusion == 'success'" in cond, "promote.yml: only after a successful release")
        commits = re.findall(r"git commit[^\n]*", script)
        r.check(commits and all("[skip ci]" in c for c in commits), "promote.yml: the commit message says [skip ci]")
        r.check("git push" in script and "HEAD:main" in script, "promote.yml: pushes the promotion to main")
        r.check("git add -- \"$OVERLAY\"" in script and str(pro.get("env", {}).get("OVERLAY")) ==
                "deploy/kustomize/overlays/production/kustomization.yaml", "promote.yml: commits only overlays/production")
        r.check("cosign verify" in script, "promote.yml: verifies the signature before promoting")


def self_test(files, readme):
    """Each mutation breaks one rule; the checker must fail on every one."""
    def text_sub(fname, old, new):
        def m(fs):
            text, _ = fs[fname]
            assert old in text, f"self-test: {old!r} not in {fname}"
            text = text.replace(old, new, 1)
            fs[fname] = (text, yaml.safe_load(text))
        return m

    def data(fname, fn):
        def m(fs):
            text, wf = fs[fname]
            wf = copy.deepcopy(wf)
            fn(wf)
            fs[fname] = (text, wf)
        return m

    def job_with(wf, action):
        return next(j for j in wf["jobs"].values() for st in steps(j) if step_uses(st, action))

    def step_of(wf, action):
        return next(st for j in wf["jobs"].values() for st in steps(j) if step_uses(st, action))

    checkout = re.search(r"actions/checkout@[0-9a-f]{40}", files["ci.yml"][0]).group(0)
    cases = {
        "an action pinned to a tag": text_sub("ci.yml", checkout, "actions/checkout@v6"),
        "an action pinned without its version comment": text_sub("ci.yml", checkout + " # v6.0.2", checkout),
        "a job without permissions": data("release.yml", lambda wf: job_with(wf, "docker/build-push-action").pop("permissions")),
        "write-all at the top": data("ci.yml", lambda wf: wf.__setitem__("permissions", "write-all")),
        "QEMU in the release": data("release.yml", lambda wf: steps(job_with(wf, "docker/build-push-action")).insert(
            0, {"uses": "docker/setup-qemu-action@" + "0" * 40})),
        "only amd64 built": data("release.yml", lambda wf: step_of(wf, "docker/build-push-action")["with"].__setitem__(
            "platforms", "linux/amd64")),
        "tags pushed before the scan": data("release.yml", lambda wf: step_of(wf, "docker/build-push-action")["with"].__setitem__(
            "tags", "ghcr.io/notes-api/notes-api:sha-x")),
        "the digest handed over before signing": data("release.yml", lambda wf: wf["jobs"]["tag"].__setitem__("needs", ["build"])),
        "no SBOM": data("release.yml", lambda wf: step_of(wf, "docker/build-push-action")["with"].__setitem__("sbom", False)),
        "a latest tag": data("release.yml", lambda wf: step_of(wf, "docker/metadata-action")["with"].__setitem__(
            "flavor", "latest=auto")),
        "Trivy that never fails": data("release.yml", lambda wf: step_of(wf, "aquasecurity/trivy-action")["with"].__setitem__(
            "exit-code", "0")),
        "Trivy on MEDIUM too": data("release.yml", lambda wf: step_of(wf, "aquasecurity/trivy-action")["with"].__setitem__(
            "severity", "MEDIUM,HIGH,CRITICAL")),
        "no cosign signature": text_sub("release.yml", "cosign sign --yes", "echo skipped sign --yes"),
        "keyless signing without id-token": data("release.yml", lambda wf: next(
            j for j in wf["jobs"].values() if "cosign sign" in runs(j))["permissions"].pop("id-token")),
        "a promote commit without [skip ci]": text_sub("promote.yml", ' [skip ci]" \\', '" \\'),
        "contents: write in CI": data("ci.yml", lambda wf: next(iter(wf["jobs"].values()))["permissions"].__setitem__(
            "contents", "write")),
        "CI running another command": text_sub("ci.yml", "run: ./scripts/test.sh", "run: cargo test"),
        "an input spliced into a script": text_sub("promote.yml", 'digest=$INPUT_DIGEST', 'digest="${{ inputs.digest }}"'),
        "81c028a: tag and branch runs in one concurrency group": data("release.yml", lambda wf: wf["concurrency"].__setitem__(
            "group", "release")),
        "81c028a: the image named ghcr.io/${{ github.repository }} (upper case possible)": text_sub(
            "release.yml", "RUST_TOOLCHAIN: ", "IMAGE: ghcr.io/${{ github.repository }}\n  RUST_TOOLCHAIN: "),
        "the scan job without the build job's image name": data("release.yml", lambda wf: next(
            j for j in wf["jobs"].values() for st in steps(j) if step_uses(st, "aquasecurity/trivy-action")).pop("env")),
    }
    failed = 0
    for name, mutate in cases.items():
        fs = dict(files)
        mutate(fs)
        r = Report(quiet=True)
        check_workflows(fs, readme, r)
        if r.errors:
            print(f"  ok: self-test: {name} -> caught ({r.errors[0]})")
        else:
            failed += 1
            print(f"FAIL: self-test: {name} was not caught")
    return failed


def dump_run_scripts(files, outdir: Path):
    """Write every `run:` block as the bash script the runner executes
    (`bash -e {0}`), with each ${{ expression }} replaced by a plain word, so
    that shellcheck sees what GitHub would run. Returns the file names."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, (_, wf) in sorted(files.items()):
        for job_name, job, st in all_steps(wf):
            script = st.get("run")
            if not script:
                continue
            body = re.sub(r"\$\{\{.*?\}\}", "GITHUB_EXPRESSION", str(script))
            path = outdir / f"{Path(fname).stem}--{job_name}--{len(written):02d}.sh"
            path.write_text("#!/usr/bin/env bash\nset -e\n" + body + "\n")
            written.append(path.name)
    return written


def load_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def check_image(repo: Path, r: Report):
    """The image's name: defined once (deploy/image.env), copied unchanged
    into every overlay's images: and Flux's ImageRepository."""
    env = repo / "deploy/image.env"
    names = re.findall(r"^NOTES_IMAGE=(\S+)$", env.read_text(), re.M) if env.is_file() else []
    if not r.check(len(names) == 1, "deploy/image.env: one NOTES_IMAGE"):
        return
    name = names[0]
    r.check(re.match(r"^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$", name),
            f"deploy/image.env: {name} is a lower-case image name (GHCR refuses upper case)")
    copies = []
    for k in sorted((repo / "deploy/kustomize/overlays").glob("*/kustomization.yaml")):
        doc = yaml.safe_load(k.read_text()) or {}
        for i in doc.get("images", []):
            if i.get("name") == "notes-api":
                copies.append((str(k.relative_to(repo)), i.get("newName")))
    for f in sorted((repo / "deploy/flux/clusters").glob("*/imagerepository.yaml")):
        copies.append((str(f.relative_to(repo)), (yaml.safe_load(f.read_text()).get("spec") or {}).get("image")))
    ren = repo / "renovate.json"
    if ren.is_file():
        import json
        disabled = [rule["matchPackageNames"][0] for rule in json.loads(ren.read_text()).get("packageRules", [])
                    if rule.get("enabled") is False and len(rule.get("matchPackageNames", [])) == 1]
        copies.append(("renovate.json", disabled[0] if disabled else None))
    differ = [f"{f}: {v}" for f, v in copies if v != name]
    r.check(copies and not differ, f"one image name, {name}, in deploy/image.env and its {len(copies)} copies"
            + (f"; differ: {', '.join(differ)} (scripts/set-image.sh)" if differ else ""))


def check_renovate(repo: Path, r: Report, cfg: dict | None = None):
    """renovate.json: every file pattern matches the files it is meant for,
    every custom regex finds every pin it is meant to update, notes-api's
    own image is left to the promote step, the charts of both engines move
    in one pull request, actions stay pinned to SHAs."""
    import json
    if cfg is None:
        path = repo / "renovate.json"
        if not r.check(path.is_file(), "renovate.json exists"):
            return
        cfg = json.loads(path.read_text())
    files = [p for top in ("deploy", "scripts", ".github") for p in (repo / top).rglob("*") if p.is_file()]
    rel = {p: p.relative_to(repo).as_posix() for p in files}

    def matched(patterns):
        rx = [re.compile(pt.strip("/")) for pt in patterns]
        return [p for p in files if any(x.search(rel[p]) for x in rx)]

    need = {
        "argocd": [p for p in files if rel[p].startswith("deploy/argocd/") and re.search(r"^\s+chart: ", p.read_text(), re.M)],
        "flux": [p for p in files if rel[p].startswith("deploy/flux/") and "kind: HelmRelease" in p.read_text()],
        "kubernetes": [p for p in files if rel[p].startswith("deploy/kustomize/") and p.suffix == ".yaml"
                       and re.search(r"^\s+image: \S+[:@]", p.read_text(), re.M)],
    }
    for manager, want in need.items():
        got = set(matched((cfg.get(manager) or {}).get("managerFilePatterns", [])))
        missing = sorted(rel[p] for p in want if p not in got)
        r.check(want and not missing, f"renovate.json: the {manager} manager reads every file it should "
                f"({len(want)})" + (f"; misses {missing}" if missing else ""))
    pins = 0
    for cm in cfg.get("customManagers", []):
        targets = matched(cm.get("managerFilePatterns", []))
        for ms in cm.get("matchStrings", []):
            rx = re.compile(ms.replace("(?<", "(?P<"))
            hits = sum(len(rx.findall(p.read_text())) for p in targets)
            if not r.check(targets and hits, f"renovate.json: {cm.get('description')}: {hits} pin(s) found"):
                continue
            pins += hits
    script = (repo / "scripts/verify-kit.sh").read_text()
    want_pins = len(re.findall(r"^  [a-z0-9@/-]+(==|@)[0-9]", script, re.M))
    image_pins = len(re.findall(r"imageName: ", (repo / "deploy/kustomize/components/postgres/cluster.yaml").read_text()))
    r.check(pins == want_pins + image_pins, f"renovate.json: the custom managers find all {want_pins} tool pins of "
            f"verify-kit.sh and the PostgreSQL image (found {pins})")
    env = repo / "deploy/image.env"
    image = (re.findall(r"^NOTES_IMAGE=(\S+)$", env.read_text(), re.M) or [None])[0]
    rules = cfg.get("packageRules", [])
    r.check(any(rule.get("enabled") is False and rule.get("matchPackageNames") == [image] for rule in rules),
            f"renovate.json: notes-api's own image ({image}) is disabled: the promote step moves it, by digest")
    r.check(any({"argocd", "flux"} <= set(rule.get("matchManagers", [])) and rule.get("groupName") for rule in rules),
            "renovate.json: the charts of Argo CD and Flux move in one group (their versions must stay equal)")
    r.check(any("github-actions" in rule.get("matchManagers", []) and rule.get("pinDigests") is True for rule in rules),
            "renovate.json: actions stay pinned to commit SHAs")


def renovate_self_test(repo: Path) -> int:
    import json
    cfg = json.loads((repo / "renovate.json").read_text())
    image = re.findall(r"^NOTES_IMAGE=(\S+)$", (repo / "deploy/image.env").read_text(), re.M)[0]
    cases = {
        "notes-api's image left to Renovate": lambda c: c["packageRules"].__setitem__(
            0, {**c["packageRules"][0], "matchPackageNames": ["ghcr.io/other/image"]}),
        "the Flux manager reading no HelmRelease": lambda c: c["flux"].__setitem__("managerFilePatterns", ["/^deploy/fluxx/"]),
        "a tool pin the regex misses": lambda c: c["customManagers"][1].__setitem__(
            "matchStrings", [c["customManagers"][1]["matchStrings"][0].replace("==", "===")]),
    }
    failed = 0
    for name, plant in cases.items():
        c = copy.deepcopy(cfg)
        plant(c)
        rr = Report(quiet=True)
        check_renovate(repo, rr, c)
        if rr.errors:
            print(f"  ok: planted: renovate.json with {name}: caught")
        else:
            failed += 1
            print(f"FAIL planted: renovate.json with {name} was not caught")
    return failed


def check_cluster(args, r: Report):
    # ---- Traefik: HTTP -> HTTPS at the entry point ---------------------------------------
    docs = load_docs(args.traefik)
    hcc = [d for d in docs if d["kind"] == "HelmChartConfig"]
    r.check(len(hcc) == 1 and hcc[0]["metadata"]["name"] == "traefik" and hcc[0]["metadata"].get("namespace") == "kube-system",
            "traefik: one HelmChartConfig kube-system/traefik (the name of k3s' bundled chart)")
    if hcc:
        values = yaml.safe_load(hcc[0]["spec"].get("valuesContent", "")) or {}
        web = ((values.get("ports") or {}).get("web") or {})
        ep = (((web.get("http") or {}).get("redirections") or {}).get("entryPoint") or {})
        r.check(ep == {"to": "websecure", "scheme": "https", "permanent": True},
                "traefik: ports.web.http.redirections.entryPoint = websecure, https, permanent (chart v39+, k3s' v40)")
        r.check("redirectTo" not in web and "redirections" not in web,
                "traefik: no pre-v39 keys (ports.web.redirectTo / ports.web.redirections), which chart v40's schema rejects")
        r.check(((values.get("service") or {}).get("spec") or {}).get("externalTrafficPolicy") == "Local",
                "traefik: service.spec.externalTrafficPolicy: Local (k3s' ServiceLB otherwise rewrites every client's "
                "address: one rate-limit bucket for all, and the operational paths' allow-list lets everyone in)")

    # ---- kube-prometheus-stack ------------------------------------------------------------
    kps = yaml.safe_load(Path(args.kps).read_text())
    spec = ((kps.get("prometheus") or {}).get("prometheusSpec") or {})
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "ruleSelectorNilUsesHelmValues"):
        r.check(spec.get(key) is False, f"kube-prometheus-stack: prometheusSpec.{key}: false (selects every namespace's objects)")
    dash = (((kps.get("grafana") or {}).get("sidecar") or {}).get("dashboards") or {})
    r.check(dash.get("enabled") is True and dash.get("label") == "grafana_dashboard" and dash.get("labelValue") == "1",
            'kube-prometheus-stack: Grafana sidecar loads ConfigMaps labelled grafana_dashboard: "1"')
    r.check(dash.get("searchNamespace") == "ALL", "kube-prometheus-stack: ... from all namespaces (searchNamespace: ALL)")
    r.check(dash.get("folderAnnotation") == "grafana_folder" and (dash.get("provider") or {}).get("foldersFromFilesStructure") is True,
            "kube-prometheus-stack: ... into the folder of their grafana_folder annotation")
    overlay = load_docs(args.overlay)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        objs = [d for d in overlay if d["kind"] == kind]
        r.check(objs and all(d["metadata"].get("labels", {}).get("release") == "kube-prometheus-stack" for d in objs),
                f"overlays/production: the {kind} also matches the chart's default selector (release: kube-prometheus-stack)")
    cms = [d for d in overlay if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get(dash.get("label")) == dash.get("labelValue")]
    r.check(cms and all(d["metadata"].get("annotations", {}).get(dash.get("folderAnnotation")) for d in cms),
            f"overlays/production: the dashboard ConfigMap ({', '.join(d['metadata']['name'] for d in cms)}) carries the sidecar's label and folder annotation")

    # ---- cert-manager: both issuers, both solver variants ---------------------------------
    servers = {"letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
               "letsencrypt-prod": "https://acme-v02.api.letsencrypt.org/directory"}
    for label, path, want in (
        ("HTTP-01", args.issuers, {"http01": {"ingress": {"ingressClassName": "traefik"}}}),
        ("DNS-01", args.issuers_dns01, {"dns01": {"cloudflare": {"apiTokenSecretRef": {"name": "cloudflare-api-token", "key": "api-token"}}}}),
    ):
        issuers = {d["metadata"]["name"]: d for d in load_docs(path) if d["kind"] == "ClusterIssuer"}
        r.check(set(issuers) == set(servers), f"cert-manager ({label}): ClusterIssuers {sorted(servers)}")
        for name, url in servers.items():
            acme = (issuers.get(name) or {}).get("spec", {}).get("acme", {})
            r.check(acme.get("server") == url and acme.get("solvers") == [want],
                    f"cert-manager ({label}): {name} -> {url.split('//')[1].split('.')[0]}, solver {next(iter(want))}")
    ingress = [d for d in overlay if d["kind"] == "Ingress" and d["spec"].get("tls")]
    used = sorted({d["metadata"].get("annotations", {}).get("cert-manager.io/cluster-issuer", "-") for d in ingress})
    r.check(all(u in servers for u in used), f"overlays/production: the TLS Ingress names an existing issuer ({', '.join(used)})")
    print(f"  info: overlays/production requests its certificate from {', '.join(used)}")


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("workflows")
    w.add_argument("dir", type=Path)
    w.add_argument("--readme", type=Path)
    w.add_argument("--self-test", action="store_true")
    d = sub.add_parser("run-scripts")
    d.add_argument("dir", type=Path)
    d.add_argument("outdir", type=Path)
    rv = sub.add_parser("renovate")
    rv.add_argument("--repo", type=Path, required=True)
    i = sub.add_parser("image")
    i.add_argument("--repo", type=Path, required=True)
    c = sub.add_parser("cluster")
    for opt in ("--traefik", "--kps", "--issuers", "--issuers-dns01", "--overlay"):
        c.add_argument(opt, required=True, type=Path)
    args = ap.parse_args()

    r = Report()
    if args.cmd == "run-scripts":
        files = {p.name: (p.read_text(), yaml.safe_load(p.read_text())) for p in sorted(args.dir.glob("*.y*ml"))}
        print(f"{len(dump_run_scripts(files, args.outdir))} run scripts")
        return 0
    if args.cmd == "workflows":
        files = {}
        for path in sorted(args.dir.glob("*.y*ml")):
            text = path.read_text()
            files[path.name] = (text, yaml.safe_load(text))
        readme = args.readme.read_text() if args.readme else None
        if args.self_test:
            return 1 if self_test(files, readme) else 0
        check_workflows(files, readme, r)
    elif args.cmd == "image":
        check_image(args.repo, r)
    elif args.cmd == "renovate":
        check_renovate(args.repo, r)
        if not r.errors and renovate_self_test(args.repo):
            return 1
    else:
        check_cluster(args, r)
    if r.errors:
        print(f"{len(r.errors)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
