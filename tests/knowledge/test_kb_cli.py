"""``temper kb`` against a real server: create, add a folder with progress, status, search, ask, delete."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import Server


def test_kb_commands_end_to_end(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "手册"
    (folder / "sub").mkdir(parents=True)
    (folder / "returns.md").write_text("# Returns\n\nUnused items can be returned within 30 days for a refund.\n")
    (folder / "sub" / "发票.txt").write_text("发票在付款后三个工作日内通过电子邮件发送。\n", encoding="utf-8")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")

    assert "created" in server.cli("kb", "create", "cli-kb", "--strategy", "fixed").stdout
    out = server.cli("kb", "add", "cli-kb", str(folder), "--meta", "team=support")
    assert "2 queued, 0 unchanged" in out.stdout and "2 of 2 documents indexed" in out.stderr
    again = server.cli("kb", "add", "cli-kb", str(folder))
    assert "0 queued, 2 unchanged" in again.stdout

    status = server.cli("kb", "status", "cli-kb").stdout
    assert "2 indexed" in status and "手册/sub/发票.txt" in status and "手册/returns.md" in status

    found = server.cli("kb", "search", "cli-kb", "发票什么时候发送").stdout
    first = next(line for line in found.splitlines() if line.startswith("│ 1 "))
    assert "发票.txt" in first and "keyword#" in first and "dense#" in first

    refused = server.cli("kb", "ask", "cli-kb", "Who painted the Mona Lisa?")
    assert "cannot answer" in refused.stdout and "refused" in refused.stderr

    missing = server.cli("kb", "search", "no-such-kb", "x", check=False)
    assert missing.returncode == 1 and "No knowledge base named" in missing.stderr and "Traceback" not in missing.stderr
    assert "deleted" in server.cli("kb", "delete", "cli-kb", "--yes").stdout
    assert "cli-kb" not in server.cli("kb", "list").stdout


def test_kb_database_source_from_the_cli(server: Server, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("CREATE TABLE products (sku INTEGER PRIMARY KEY, name TEXT, note TEXT)")
        db.execute("INSERT INTO products VALUES (1, 'Kettle', 'Boils 1.7 litres in three minutes.')")
    server.cli("kb", "create", "cli-db")
    out = server.cli("kb", "add", "cli-db", "--db-url", f"sqlite:///{tmp_path / 'shop.db'}",
                     "--query", "SELECT sku, name, note FROM products", "--key-column", "sku", "--title-column", "name")
    assert "database source products" in out.stdout and "1 of 1 documents indexed" in out.stderr
    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("INSERT INTO products VALUES (2, 'Toaster', 'Four slots, seven browning levels.')")
    assert "1 of 1 documents indexed" in server.cli("kb", "sync", "cli-db", "products").stderr
    status = server.cli("kb", "status", "cli-db").stdout
    assert "source products" in status and "2 documents" in status and "products#sku=2" in status
