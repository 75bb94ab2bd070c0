"""``temper serve``."""
from __future__ import annotations

import typer
import uvicorn

from temper.cli.common import clean_errors, console
from temper.config import get_settings
from temper.server.app import create_app
from temper.server.connections import guarded_protocol


@clean_errors
def serve(host: str = typer.Option(None, help="Bind address (TEMPER_HOST, default 127.0.0.1)."),
          port: int = typer.Option(None, help="Port (TEMPER_PORT, default 8600).")) -> None:
    """Start the server: OpenAI-compatible API under /v1, management API under /api/v1."""
    s = get_settings()
    host, port = host or s.host, port or s.port
    app = create_app(s)
    rt = app.runtime
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if rt.admin_key_created:
        console.print(f"[bold]Admin key (shown once, saved to {s.home_dir / 'admin_key'}):[/bold] {rt.admin_key}", soft_wrap=True)
    else:
        console.print(f"Admin key: in {s.home_dir / 'admin_key'} (or TEMPER_ADMIN_KEY)", soft_wrap=True)
    console.print(f"Console:  [bold]{url}/[/bold]  (sign in with the admin key)", soft_wrap=True)
    console.print(f"API:      {url}/v1 (OpenAI base_url), management {url}/api/v1, data in {s.home_dir}", soft_wrap=True)
    http = guarded_protocol(s.header_timeout_s, s.body_timeout_s, s.max_connections)
    proxies = s.trusted_proxy_list  # X-Forwarded-For is believed from these peers only (none by default)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http=http, lifespan="on", log_level=s.log_level,
                access_log=False, timeout_keep_alive=30, proxy_headers=bool(proxies),
                forwarded_allow_ips=proxies or None)
