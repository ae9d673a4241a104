# One image for every way fanout runs.
#   docker run -p 8000:8000 -v fanout-data:/data -e FANOUT_API_KEYS=KEY:TENANT IMAGE
#     -> `fanout serve` on 0.0.0.0:8000, SQLite in /data. Without FANOUT_API_KEYS it refuses to
#     start, saying which variable to set: with no keys every caller would be one tenant.
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
# The dependencies first, read from pyproject.toml alone: this layer is built again only when they
# change, not on every change to the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['aws']))" >requirements.txt \
    && pip install -r requirements.txt "awslambdaric>=3"
COPY README.md LICENSE ./
COPY fanout fanout
COPY api api
COPY workers workers
# Not editable: pip compiles the code into site-packages, so a Lambda cold start (read-only file
# system) does not compile it again.
RUN pip install --no-deps . && rm -rf /app/*

COPY scripts/docker-entrypoint /usr/local/bin/docker-entrypoint
RUN useradd --system --create-home fanout && mkdir /data && chown fanout /data
USER fanout
VOLUME /data
EXPOSE 8000
# Ready means the store takes a write (a full /data is unhealthy), not only that the process
# answers; the slim image has no curl, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('FANOUT_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["docker-entrypoint"]
CMD ["serve"]
