# One image per kitshop service, from one Dockerfile:
#
#   docker build --build-arg SERVICE=inventory --build-arg PORT=8082 \
#     --build-arg VERSION=0.1.0 -t kitshop/inventory:0.1.0 .
#
# SERVICE is the folder of the service (user, inventory, order, payment, notification,
# gateway); its main is ./$SERVICE/cmd/$SERVICE. PORT is the port it listens on in the
# container. The result is a static binary on distroless (no shell, no package manager)
# running as the nonroot user, with a static health check binary beside it.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG SERVICE
ARG VERSION=dev
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<user|inventory|order|payment|notification|gateway>" >&2; exit 1; }
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" -o /out/service "./${SERVICE}/cmd/${SERVICE}" \
 && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w" -o /out/healthcheck ./deploy/healthcheck \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
ARG VERSION=dev
ARG PORT=8080
LABEL org.opencontainers.image.title="kitshop-${SERVICE}" \
      org.opencontainers.image.description="kitshop ${SERVICE} service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kitshop/kitshop"
COPY --from=build /out/service /usr/local/bin/kitshop-service
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
# State the services keep on disk (the user service's signing keyring) lives here; a
# named volume mounted on it starts with this owner, so the nonroot user can write it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/kitshop
ENV KITSHOP_HTTP_ADDR=":${PORT}"
USER 65532:65532
EXPOSE ${PORT}
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/kitshop-service"]
