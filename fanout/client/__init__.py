"""A Python client for the fanout HTTP API (httpx): `Client` and `AsyncClient`, their errors,
and `verify_webhook` for webhook receivers.

```python
from fanout.client import Client

with Client("http://127.0.0.1:8000", api_key="...") as fanout:
    job = fanout.submit("sha256", ["a", "b"], params={"rounds": 10})
    done = fanout.wait(job.id, progress=lambda j: print(j.counts))
    for result in fanout.results(job.id):
        print(result.index, result.status, result.output)
```
"""

from fanout.client.aio import AsyncClient
from fanout.client.errors import (
    APIError,
    BadRequest,
    Conflict,
    FanoutClientError,
    Invalid,
    InvalidSignature,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
)
from fanout.client.items import ItemsFileError, read_items
from fanout.client.sync import Client
from fanout.client.webhooks import verify_webhook
from fanout.schemas import ItemResult, JobEvent, JobPublic, JobsPublic, Problem

__all__ = [
    "APIError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "FanoutClientError",
    "Invalid",
    "InvalidSignature",
    "ItemResult",
    "ItemsFileError",
    "JobEvent",
    "JobPublic",
    "JobsPublic",
    "NotFound",
    "Problem",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "read_items",
    "verify_webhook",
]
