# One image for every way fanout runs.
#   docker run -p 8000:8000 -e FANOUT_API_KEYS=key:tenant IMAGE   -> `fanout serve` (SQLite in /data)
#   as a Lambda container image: the function's ImageConfig.Command names its handler, e.g.
#   fanout.workers.lambda_handlers.chunk_worker (see infra/template.yaml); the entry script then runs
#   Lambda's runtime interface client instead of the server.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FANOUT_HOST=0.0.0.0 \
    FANOUT_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fanout fanout
COPY api api
COPY workers workers
# Not editable: pip compiles the code into site-packages, so a Lambda cold start (read-only file
# system) does not compile it again.
RUN pip install ".[aws]" "awslambdaric>=3" && rm -rf /app/*

COPY scripts/docker-entrypoint /usr/local/bin/docker-entrypoint
RUN useradd --system --create-home fanout && mkdir /data && chown fanout /data
USER fanout
VOLUME /data
EXPOSE 8000

ENTRYPOINT ["docker-entrypoint"]
CMD ["serve"]
