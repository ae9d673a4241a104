"""What a Lambda cold start imports: the handler modules, in a fresh interpreter with a deployed
function's environment, load no package they need only later or never (their time is in
`python -m bench coldstart`; here only which packages, so nothing depends on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.coldstart import LAMBDA_ENV

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = """
import json, sys
import {module}
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""
# boto3 is imported with the first AWS client, on the first event; httpx and h11 when a webhook
# is sent (never httpx's command-line client: click, rich, pygments); sse-starlette (and uvicorn)
# when an event stream opens; Powertools' batch utility not at all.
LATER = {"boto3", "botocore", "httpx", "h11", "click", "rich", "pygments", "aws_lambda_powertools"}
WEB = {"fastapi", "starlette", "mangum", "sse_starlette", "uvicorn", "anyio"}


def loaded(module: str) -> set[str]:
    """The top-level packages importing `module` loads."""
    return {name.partition(".")[0] for name in modules(module)}


def modules(module: str) -> set[str]:
    env = {**LAMBDA_ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(module=module)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_queue_side_handlers_import_no_web_framework_http_client_or_aws_sdk() -> None:
    assert loaded("fanout.workers.lambda_handlers") & (LATER | WEB) == set()


def test_the_api_handler_builds_its_app_without_importing_the_aws_sdk_or_a_server() -> None:
    found = loaded("fanout.api.lambda_handler")

    assert {"fastapi", "mangum"} <= found
    assert found & (LATER | {"sse_starlette", "uvicorn"}) == set()


def test_the_queue_side_handlers_leave_the_input_file_reader_to_s3_ingest() -> None:
    assert "fanout.workers.input_files" not in modules("fanout.workers.lambda_handlers")


def test_sending_webhooks_imports_httpx_without_its_command_line_client() -> None:
    """~6 MB and ~30 ms a process (the notifier's, the API's, the notify handler's): `fanout`
    marks httpx's `_main` as not importable, and httpx leaves its `main` a stub. (Attempts are
    made with h11, `fanout.http1`; httpx parses and checks the URLs, `fanout.destinations`.)"""
    found = loaded("fanout.workers.notifier, fanout.http1, httpx")

    assert {"httpx", "h11"} <= found
    assert found & {"click", "rich", "pygments"} == set()
