# efflux-gateway: a small, non-root image with a safe default config (config/gateway.container.yaml: no demo
# key, no demo route; it refuses to start without EFFLUX_ADMIN_TOKEN, since it listens on 0.0.0.0).
#   docker build -t efflux-gateway .
#   docker run -p 8080:8080 -e EFFLUX_ADMIN_TOKEN=$(openssl rand -hex 32) -e OPENAI_API_KEY efflux-gateway
# Your own config: mount it over /app/config/gateway.yaml (or set EFFLUX_CONFIG). docker-compose.yml adds Redis
# and PostgreSQL; deploy/k8s/ has Kubernetes manifests. See docs/deployment.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY proxy ./proxy
COPY plugins ./plugins
# The runtime dependencies only (no test extras); nothing of this stage but /install reaches the image.
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 EFFLUX_CONFIG=/app/config/gateway.yaml
COPY --from=build /install /usr/local
WORKDIR /app
COPY config/gateway.container.yaml config/gateway.yaml
COPY config/pricing.yaml config/pricing.yaml
COPY LICENSE ./
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin efflux
# Numeric, so that Kubernetes' runAsNonRoot can verify it. The journal goes to /tmp (see the config): the
# root filesystem may be read-only.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EFFLUX_PORT', '8080'), timeout=2).status == 200 else 1)"]
ENTRYPOINT ["efflux-gateway"]
CMD ["serve"]
