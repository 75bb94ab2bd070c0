"""Talking to a running server from the CLI: its address, the key, errors as one clean line."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import typer

from temper.config import get_settings
from temper.errors import TemperError


class ServerError(TemperError):
    """The server answered with an error (its OpenAI-shaped message), or could not be reached."""

    status = 502


def api_key() -> str:
    s = get_settings()
    if key := os.environ.get("TEMPER_API_KEY") or s.admin_key:
        return key
    path = s.home_dir / "admin_key"
    if path.exists():
        return path.read_text().strip()
    raise typer.BadParameter("no key: set TEMPER_API_KEY or start the server once to create the admin key")


def base_url(url: str | None = None) -> str:
    s = get_settings()
    return (url or os.environ.get("TEMPER_URL") or f"http://{s.host}:{s.port}").rstrip("/")


def error_message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return r.text[:500] or r.reason_phrase


class Client:
    def __init__(self, url: str | None = None, timeout: float = 600) -> None:
        self.base = base_url(url)
        self.http = httpx.Client(base_url=self.base, timeout=timeout,
                                 headers={"Authorization": f"Bearer {api_key()}"})

    def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.ConnectError:
            raise ServerError(f"no server at {self.base}; start one with `temper serve`") from None
        if r.status_code >= 400:
            raise ServerError(f"{r.status_code}: {error_message(r)}")
        return r.json()

    def pages(self, path: str, limit: int = 200, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged list (``limit``/``offset``, ``has_more``)."""
        offset = 0
        while True:
            page = self.request("GET", path, params={**params, "limit": limit, "offset": offset})
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            offset += len(page["data"])

    def stream(self, method: str, path: str, **kw: Any) -> Any:
        """A context manager over a streamed response (status already checked)."""
        return _Stream(self, method, path, kw)


class _Stream:
    def __init__(self, client: Client, method: str, path: str, kw: dict[str, Any]) -> None:
        self.client, self.method, self.path, self.kw = client, method, path, kw
        self._cm: Any = None

    def __enter__(self) -> httpx.Response:
        self._cm = self.client.http.stream(self.method, self.path, **self.kw)
        try:
            r = self._cm.__enter__()
        except httpx.ConnectError:
            raise ServerError(f"no server at {self.client.base}; start one with `temper serve`") from None
        if r.status_code >= 400:
            r.read()
            message = error_message(r)
            self._cm.__exit__(None, None, None)
            raise ServerError(f"{r.status_code}: {message}")
        return r

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)
