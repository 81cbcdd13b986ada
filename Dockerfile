# The gateway as a sidecar: configure it with a mounted /etc/gateway/gateway.toml,
# or with GATEWAY_* environment variables alone (see README "Docker").
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_LISTEN=0.0.0.0:4180

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY templates ./templates
RUN pip install --no-cache-dir ".[redis]" \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /etc/gateway --shell /usr/sbin/nologin gateway \
    && mkdir -p /etc/gateway && chown gateway /etc/gateway

WORKDIR /etc/gateway
USER 10001
EXPOSE 4180

# No curl needed: the gateway asks itself for /_auth/health on its configured port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["gateway", "healthcheck"]

ENTRYPOINT ["gateway"]
CMD ["serve"]
