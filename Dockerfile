# efflux-gateway: a small, non-root image. Build: docker build -t efflux-gateway .
# Run: docker run -p 8080:8080 -v $PWD/config:/app/config efflux-gateway
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY plugins ./plugins
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 EFFLUX_HOST=0.0.0.0 EFFLUX_PORT=8080
COPY --from=build /install /usr/local
WORKDIR /app
COPY config ./config
RUN useradd --system --uid 10001 --no-create-home efflux && chown -R efflux /app
USER efflux
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EFFLUX_PORT', '8080'), timeout=2).status == 200 else 1)"]
ENTRYPOINT ["efflux-gateway"]
CMD ["serve", "--config", "config/gateway.example.yaml", "--host", "0.0.0.0"]
