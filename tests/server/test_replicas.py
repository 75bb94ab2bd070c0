"""Two server replicas on one PostgreSQL and one Redis: a key's limits and budget hold across both, and
their usage adds up exactly."""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from tests.conftest import Server, start_server, stop_server
from tests.upstream import Upstream

MSG = [{"role": "user", "content": "hi"}]
TOKENS_PER_CALL = 12  # what the test upstream reports for this message


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str, redis_url: str,
             upstream: Upstream) -> Iterator[tuple[Server, Server]]:
    name = "replicas_" + os.urandom(4).hex()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_dsn).set(drivername="postgresql+psycopg", database=name)
    env = {"TEMPER_DATABASE_URL": url.render_as_string(hide_password=False), "TEMPER_REDIS_URL": redis_url,
           "TEMPER_RUN_JOBS": "false"}
    first_home, second_home = tmp_path_factory.mktemp("replica-a"), tmp_path_factory.mktemp("replica-b")
    first = start_server(first_home, env)
    second: Server | None = None
    try:
        shutil.copy(first_home / "admin_key", second_home / "admin_key")  # one deployment, one admin key
        second = start_server(second_home, env)
        r = first.api("POST", "/api/v1/models", json={"id": "mock", "base_url": upstream.base_url})
        assert r.status_code == 201, r.text
        wait_for_model(second, "mock")
        yield first, second
    finally:
        for s in (first, second):
            if s is not None:
                stop_server(s)


def wait_for_model(s: Server, model: str) -> None:
    """A model added through one replica reaches the other through the shared database's revisions."""
    deadline = time.time() + 10
    while time.time() < deadline:
        if any(m.id == model for m in s.client().models.list()):
            return
        time.sleep(0.1)
    raise AssertionError(f"{model} never reached {s.url}")


def call(s: Server, key: str) -> httpx.Response:
    return httpx.post(s.base_url + "/chat/completions", json={"model": "mock", "messages": MSG},
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)


def new_key(replicas: tuple[Server, Server], **limits: int) -> tuple[str, str]:
    """A key made on the first replica, once the second accepts it: (its id, the key)."""
    first, second = replicas
    r = first.api("POST", "/api/v1/keys", json=limits)
    assert r.status_code == 201, r.text
    key_id, key = r.json()["id"], r.json()["key"]
    deadline = time.time() + 10  # the other replica loads its key ring from the database within a poll
    while call(second, key).status_code == 401:
        assert time.time() < deadline, "the second replica never saw the key"
        time.sleep(0.1)
    return key_id, key


def test_a_requests_per_minute_limit_holds_across_replicas(replicas: tuple[Server, Server]) -> None:
    _, key = new_key(replicas, rpm=10)  # one request spent seeing it on the second replica
    with ThreadPoolExecutor(18) as pool:
        answers = list(pool.map(lambda i: call(replicas[i % 2], key).status_code, range(18)))
    assert sorted(answers) == [200] * 9 + [429] * 9, answers
    assert {call(s, key).status_code for s in replicas} == {429}


def test_a_token_budget_holds_across_replicas(replicas: tuple[Server, Server]) -> None:
    _, key = new_key(replicas, token_budget=5 * TOKENS_PER_CALL)
    statuses = [call(replicas[i % 2], key).status_code for i in range(4)]  # 5 calls spend the budget
    assert statuses == [200] * 4
    r = [call(s, key) for s in replicas]
    assert [x.status_code for x in r] == [429, 429]
    assert {x.json()["error"]["code"] for x in r} == {"insufficient_quota"}


def test_usage_from_both_replicas_adds_up_exactly(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    key_id, key = new_key(replicas)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: call(replicas[i % 3 == 0], key).status_code, range(30)))
    assert statuses == [200] * 30
    expected = 31 * TOKENS_PER_CALL  # and the call that waited for the key
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = first.api("GET", "/api/v1/usage", params={"group_by": "key", "key_id": key_id}).json()["data"]
        if rows and rows[0]["requests"] == 31:
            break
        time.sleep(0.2)
    assert rows[0]["requests"] == 31 and rows[0]["total_tokens"] == expected, rows
    keys = {k["id"]: k for k in second.api("GET", "/api/v1/keys").json()["data"]}
    assert keys[key_id]["tokens_used"] == expected
