# erpsync: one image for workers, producers, Flower and the sandbox.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/erpsync

RUN pip install --no-cache-dir uv \
 && useradd --system --uid 10001 --home-dir /app erpsync

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY erpsync ./erpsync
COPY adapters ./adapters
COPY state ./state
COPY delivery ./delivery
COPY producers ./producers
COPY workers ./workers
COPY simulators ./simulators
COPY cli ./cli
RUN uv sync --frozen --no-dev

USER erpsync
ENV PATH=/opt/erpsync/bin:$PATH \
    ERPSYNC_CONFIG=/etc/erpsync/erpsync.toml \
    ERPSYNC_LOG_FORMAT=json
ENTRYPOINT ["erpsync"]
CMD ["--help"]
