"""`/docs` and `/redoc` come from the installed package: the pages name no other host, and every
script, stylesheet and icon they name is served here."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.anyio
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize(
    ("page", "scripts"),
    [("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})],
)
async def test_the_docs_pages_load_every_asset_from_this_server(
    client: httpx.AsyncClient, page: str, scripts: set[str]
) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html, "the page names another host"
    urls = [a or b for a, b in ASSET.findall(html)]
    assert scripts <= {url.rsplit("/", 1)[-1] for url in urls}
    for url in urls:
        assert not urlsplit(url).netloc, url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0


async def test_swagger_ui_asks_no_online_validator(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text

    assert '"validatorUrl": null' in html


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_tell_the_browser_to_load_from_this_server_only(
    client: httpx.AsyncClient, page: str
) -> None:
    policy = (await client.get(page)).headers["content-security-policy"]

    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "http" not in policy and "*" not in policy
