# durabatch worker image: `docker build -t durabatch .`, then `docker run durabatch` runs a worker;
# any other durabatch command works too (`docker run durabatch db migrate`, `... emulator`).
# Configuration is environment only (DURABATCH_*, provider API keys): nothing secret is baked in.

FROM python:3.11-slim AS build
WORKDIR /src
# Wheels for durabatch and every dependency, so the runtime stage needs no compiler or index.
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DURABATCH_DATA_DIR=/var/lib/durabatch
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels durabatch \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/durabatch --shell /usr/sbin/nologin durabatch \
 && mkdir -p /var/lib/durabatch \
 && chown durabatch:durabatch /var/lib/durabatch
USER durabatch
WORKDIR /var/lib/durabatch
# 9464: Prometheus metrics when DURABATCH_METRICS_ADDRESS=0.0.0.0:9464; 8080: `durabatch emulator`.
EXPOSE 9464 8080
# The worker drains on SIGTERM (graceful shutdown), so give it time: `docker stop -t 45`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["durabatch"]
CMD ["worker"]
