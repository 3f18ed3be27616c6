# One image per kitshop program, from one Dockerfile:
#
#   docker build --build-arg SERVICE=inventory --build-arg PORT=8082 \
#     --build-arg VERSION=0.1.0 -t kitshop/inventory:0.1.0 .
#
# SERVICE is a service (user, inventory, order, payment, notification, gateway; its
# main is ./$SERVICE/cmd/$SERVICE) or kitshop, the command whose bootstrap and seed
# subcommands prepare a container deployment. PORT is the port a service listens on in
# the container. The build stage compiles every program at once and does not depend on
# SERVICE, so building the seven images compiles once. The result is a static binary on
# distroless (no shell, no package manager) running as the nonroot user, with a static
# health check binary beside it.
#
# BUILDER_IMAGE and RUNTIME_IMAGE name the two bases; a machine that cannot pull them
# builds stand-ins with deploy/standin/build.sh.

ARG GO_VERSION=1.26.8
ARG BUILDER_IMAGE=golang:${GO_VERSION}-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The folders of the state kept on disk (see the runtime stage).
RUN mkdir -p /out/data/keys /out/data/consul /out/data/tls \
 && for s in user inventory order payment notification gateway; do mkdir -p "/out/data/tokens/$s"; done
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" -o /out/bin/ \
      ./user/cmd/user ./inventory/cmd/inventory ./order/cmd/order ./payment/cmd/payment \
      ./notification/cmd/notification ./gateway/cmd/gateway ./cmd/kitshop ./deploy/healthcheck

# The one program of this image.
FROM build AS pick
ARG SERVICE
RUN test -n "${SERVICE}" && test -x "/out/bin/${SERVICE}" \
 || { echo "build with --build-arg SERVICE=<user|inventory|order|payment|notification|gateway|kitshop>" >&2; exit 1; } \
 && cp "/out/bin/${SERVICE}" /out/service

FROM ${RUNTIME_IMAGE}
ARG SERVICE
ARG VERSION=dev
ARG PORT=8080
LABEL org.opencontainers.image.title="kitshop-${SERVICE}" \
      org.opencontainers.image.description="kitshop ${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kitshop/kitshop"
COPY --from=pick /out/service /usr/local/bin/kitshop-service
COPY --from=build /out/bin/healthcheck /usr/local/bin/healthcheck
# State on disk lives under /var/lib/kitshop: keys/ holds the user service's signing
# keyring; tokens/<service>/ the Consul token the bootstrap step makes for a service,
# consul/ the tokens it keeps for itself, tls/ the gateway's certificate. A named volume
# mounted on one of these folders starts with its owner, so the nonroot user can write it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/kitshop
ENV KITSHOP_HTTP_ADDR=":${PORT}"
USER 65532:65532
EXPOSE ${PORT}
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/kitshop-service"]
