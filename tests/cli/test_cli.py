"""The ``temper`` CLI as a user runs it: real subprocesses, a real data dir, clean errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, TEMPER


def run(home: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEMPER_HOME": str(home), "PYTHONPATH": str(ROOT), **settings}
    env.pop("TEMPER_ADMIN_KEY", None)
    return subprocess.run([*TEMPER, *args], env=env, capture_output=True, text=True, timeout=120)


def assert_clean_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert needle in out, out
    assert "Traceback" not in out


def test_models_add_show_list_remove(tmp_path: Path) -> None:
    r = run(tmp_path, "models", "add", "vendor-chat", "--provider", "openai_compat", "--base-url",
            "https://vendor.example/v1", "--upstream-model", "big-1", "--api-key-env", "VENDOR_KEY",
            "--alias", "vc", "--input-price", "1.5", "--output-price", "6", "--context-length", "32768")
    assert r.returncode == 0, r.stderr
    shown = json.loads(run(tmp_path, "models", "show", "vc").stdout)
    assert shown["id"] == "vendor-chat" and shown["aliases"] == ["vc"] and shown["input_price"] == 1.5
    dep = shown["deployments"][0]
    assert dep["base_url"] == "https://vendor.example/v1" and dep["upstream_model"] == "big-1"
    assert dep["api_key_env"] == "VENDOR_KEY"
    listed = {m["id"] for m in json.loads(run(tmp_path, "models", "list", "--json").stdout)}
    assert {"vendor-chat", "smollm2-135m-instruct", "multilingual-e5-small"} <= listed
    assert run(tmp_path, "models", "remove", "vendor-chat").returncode == 0
    assert_clean_error(run(tmp_path, "models", "show", "vendor-chat"), "not found")


@pytest.mark.parametrize("args, needle", [
    (("models", "add", "x", "--base-url", "not-a-url"), "base_url"),
    (("models", "add", "x", "--provider", "nope", "--base-url", "http://a"), "unknown provider"),
    (("models", "add", "x", "--base-url", "http://a", "--modality", "video"), "modality"),
    (("models", "add", "smollm2", "--base-url", "http://a"), "already"),
    (("models", "remove", "gemma-3-270m"), "built-in"),
    (("models", "remove", "missing"), "not found"),
    (("keys", "revoke", "key_missing"), "not found"),
    (("keys", "create", "--rpm", "0"), "rpm"),
    (("keys", "create", "--key", "short"), "16 to 256 printable ASCII"),
    (("keys", "create", "--key", "sk-ключ-1234567890abcdef"), "ASCII"),  # it would never authenticate
    (("usage", "--by", "planet"), "--by"),
])
def test_bad_input_gives_clean_message(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    assert_clean_error(run(tmp_path, *args), needle)


@pytest.mark.parametrize("setting, value, needle", [
    ("TEMPER_TRACE_SAMPLE_RATE", "1.5", "TEMPER_TRACE_SAMPLE_RATE='1.5': Input should be less than or equal to 1"),
    ("TEMPER_PORT", "eighty", "TEMPER_PORT='eighty': Input should be a valid integer"),
])
def test_an_invalid_setting_is_named_without_a_traceback(tmp_path: Path, setting: str, value: str,
                                                         needle: str) -> None:
    r = run(tmp_path, "serve", **{setting: value})
    assert_clean_error(r, "invalid setting")
    assert needle in " ".join((r.stdout + r.stderr).split())  # rich folds long lines


def test_keys_lifecycle(tmp_path: Path) -> None:
    r = run(tmp_path, "keys", "create", "--name", "app-1", "--rpm", "60", "--model", "smollm2")
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-temper-")
    listing = run(tmp_path, "keys", "list").stdout
    assert "app-1" in listing and secret not in listing  # only the prefix is ever shown again
    key_id = next(w for w in r.stdout.split() if w.startswith("key_"))
    assert run(tmp_path, "keys", "revoke", key_id).returncode == 0
    assert "app-1" not in run(tmp_path, "keys", "list").stdout
    assert "app-1" in run(tmp_path, "keys", "list", "--all").stdout


def test_chat_streams_and_usage_reports(server: Server) -> None:
    r = server.cli("chat", "smollm2", "Say hi", "--max-tokens", "8", "--url", server.url)
    assert r.stdout.strip() and "completion tokens" in r.stderr
    r = server.cli("usage", "--by", "model")
    assert "smollm2-135m-instruct" in r.stdout
    r = server.cli("chat", "no-such-model", "hi", "--url", server.url, check=False)
    assert_clean_error(r, "does not exist")


def test_chat_without_server_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "admin_key").write_text("sk-temper-admin-test\n")
    assert_clean_error(run(tmp_path, "chat", "smollm2", "hi", "--url", "http://127.0.0.1:9"), "no server")


def test_help_lists_every_group() -> None:
    r = subprocess.run([sys.executable, "-m", "temper.cli.main", "--help"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    for word in ("serve", "models", "keys", "chat", "usage"):
        assert word in r.stdout


def test_the_data_directory_and_database_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)  # as a shell's umask would leave it
    assert run(home, "keys", "create", "--name", "k").returncode == 0
    mode = {p: (home / p).stat().st_mode & 0o777 for p in ("", "temper.db")}
    assert mode == {"": 0o700, "temper.db": 0o600}, {k: oct(v) for k, v in mode.items()}
