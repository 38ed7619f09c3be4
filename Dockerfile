# syntax=docker/dockerfile:1.7
#
# notes-api container image: a static musl binary on an empty (scratch) base.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t ghcr.io/notes-api/notes-api:sha-"$(git rev-parse --short=12 HEAD)" --push .
#
# The builder runs on the *target* platform (QEMU under buildx for the foreign
# architecture) so the bundled SQLite C code is compiled by the native
# musl-gcc; no cross toolchain is needed. Dependencies are cached between
# builds by BuildKit cache mounts (cargo registry, git checkouts and target/).
#
# Runtime contract: UID/GID 65532, read-only root filesystem, writable paths
# only /data (mount a volume) and /tmp (mount an emptyDir/tmpfs).
# Dockerfile.scratch builds the same runtime layout from a locally built binary.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH=${TARGETARCH}" >&2; exit 1 ;; \
    esac > /rust-target \
 && rustup target add "$(cat /rust-target)"
WORKDIR /src
COPY . .
# build.rs records the commit; the context has no .git.
ARG REVISION=unknown
ENV NOTES_GIT_SHA=${REVISION}
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=notes-api-target-${TARGETARCH},sharing=locked \
    cargo build --release --locked --bin notes-api --target "$(cat /rust-target)" \
 && install -D -m 0755 "target/$(cat /rust-target)/release/notes-api" /out/usr/local/bin/notes-api
# The runtime file system: CA bundle, passwd/group for UID 65532, /data and /tmp.
RUN install -d -m 0755 /out/etc/ssl/certs \
 && install -m 0644 /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt \
 && install -m 0644 deploy/image/rootfs/etc/passwd deploy/image/rootfs/etc/group deploy/image/rootfs/etc/nsswitch.conf /out/etc/ \
 && install -d -m 0755 -o 65532 -g 65532 /out/data \
 && install -d -m 1777 /out/tmp

FROM scratch AS runtime
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/notes-api/notes-api
LABEL org.opencontainers.image.title="notes-api" \
      org.opencontainers.image.description="Self-hostable notes and documents service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/ /
ENV NOTES_LISTEN=0.0.0.0:8000 \
    NOTES_DATA_DIR=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/notes-api", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/notes-api"]
CMD ["serve"]
