from typing import Any


async def test_smoke(console: Any) -> None:
    page = await console.client.get("/console/sessions")
    assert page.status_code == 200, page.text
    print(page.headers)
