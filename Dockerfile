# syntax=docker/dockerfile:1
# The operator's image, as the Helm chart runs it:
#   make image                                      # tags actor-token-operator:<version>
#   docker build -t <repository>:<version> .        # the same, by hand
# <version> is Cargo.toml's `version`, which is the chart's appVersion and so its default tag.
#
# Build arguments (the defaults are the public images; hack/base-images.sh makes local
# equivalents where those can't be pulled, see the README's Tests section):
#   BUILD_BASE    the Rust toolchain on Debian 12 that builds the binary
#   RUNTIME_BASE  glibc, libgcc and CA certificates, user 65532, no shell
#   BINARY        `build` (default): compile in the build stage; `prebuilt`: take the binary
#                 at .build/image/actor-token-operator in the build context instead (built on
#                 Debian 12 for the same glibc), as the tests do with the binary they built
ARG BUILD_BASE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY=build

# Build: the release binary, exactly the dependencies of Cargo.lock (--locked). Debian 12, so
# the binary's glibc is the runtime image's. Stripped of its symbol table (a quarter of its
# size); a panic still says where it happened.
FROM ${BUILD_BASE} AS build
WORKDIR /build
# The workspace: the operator, and the Clerk simulator's manifest and sources, which cargo needs
# to load the workspace (it is not built). .dockerignore keeps everything else out.
COPY Cargo.toml Cargo.lock ./
COPY src/ src/
COPY clerk-sim/ clerk-sim/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin actor-token-operator \
 && install -D --strip -m 0755 target/release/actor-token-operator /out/actor-token-operator

# A binary built outside (BINARY=prebuilt). Builders skip this stage unless it is chosen.
FROM scratch AS prebuilt
COPY .build/image/actor-token-operator /out/actor-token-operator

FROM ${BINARY} AS binary
WORKDIR /out

# Run: glibc and libgcc, CA certificates (for Clerk's TLS), no shell, no package manager.
FROM ${RUNTIME_BASE}
# The Deployment's `command` names this path (tests/chart.rs checks that they agree).
COPY --from=binary /out/actor-token-operator /usr/local/bin/actor-token-operator
# The distroless `nonroot` user; the chart runs as it too (runAsUser 65532).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/actor-token-operator"]
CMD ["run"]
