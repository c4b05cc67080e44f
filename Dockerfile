# mcp-gateway container image.
#
#   docker build -t mcp-gateway .
#   docker run --rm -p 127.0.0.1:8080:8080 mcp-gateway
#
# Two stages. `build` compiles release binaries with the Swift standard library linked in statically
# (--static-swift-stdlib), so `runtime` needs no Swift toolchain or runtime: only glibc, libm, libstdc++,
# libgcc_s and zlib, all already part of debian:bookworm-slim. Debug info is stripped (about 40% of the
# binary); the symbol table stays, so a crash's backtrace still names its functions.
#
# `make image-test` builds the `runtime` stage with podman from binaries built on the host, supplied as
# `--build-context build=DIR` in place of this file's `build` stage (DIR/staging holds what /staging holds
# here); see deploy/image-test.sh.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
# Dependencies first: this layer is reused while only the sources change. Package.resolved is optional.
COPY Package.* ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product mcp-gateway \
 && swift build -c release --static-swift-stdlib --product ExampleServer \
 && mkdir -p /staging \
 && bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" \
 && install -m 0755 "$bin/mcp-gateway" /staging/mcp-gateway \
 && install -m 0755 "$bin/ExampleServer" /staging/mcp-example-server \
 && strip --strip-debug /staging/mcp-gateway /staging/mcp-example-server \
 && install -m 0644 /etc/ssl/certs/ca-certificates.crt /staging/ca-certificates.crt

FROM ${RUNTIME_IMAGE} AS runtime
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mcp-gateway" \
      org.opencontainers.image.description="A production gateway for the Model Context Protocol" \
      org.opencontainers.image.revision="${REVISION}"

# An unprivileged user with a fixed uid/gid, so Kubernetes' runAsNonRoot can verify it numerically.
RUN groupadd --gid 10001 mcp \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/mcp-gateway \
        --shell /usr/sbin/nologin mcp \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/mcp-gateway

COPY --from=build /staging/mcp-gateway /usr/local/bin/mcp-gateway
COPY --from=build /staging/mcp-example-server /usr/local/bin/mcp-example-server
# CA roots for outbound TLS (JWKS, token introspection, OTLP over https): bookworm-slim has none.
COPY --from=build /staging/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY config/gateway.yaml /etc/mcp-gateway/gateway.yaml

# config/gateway.yaml reads both variables: listen on every interface inside the container (the default is
# loopback outside one), and run the bundled example stdio server from where this image puts it.
ENV MCP_GATEWAY_LISTEN=0.0.0.0:8080 \
    EXAMPLE_SERVER=/usr/local/bin/mcp-example-server \
    MCP_GATEWAY_CONFIG=/etc/mcp-gateway/gateway.yaml \
    MCP_GATEWAY_REVISION=${REVISION}

USER 10001:10001
WORKDIR /var/lib/mcp-gateway
EXPOSE 8080

# No curl in the image: the gateway probes its own /healthz (plain HTTP/1.0 GET on loopback, exit 0 on 200).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mcp-gateway", "healthcheck", "--url", "http://127.0.0.1:8080/healthz", "--timeout", "3s"]

# Exec form: the gateway is PID 1 and receives SIGTERM itself (it drains within server.shutdown_grace, then
# exits 0). If your backends start grandchildren that may outlive them, run with `--init` so a minimal init
# reaps them.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mcp-gateway"]
CMD ["serve", "--config", "/etc/mcp-gateway/gateway.yaml"]
