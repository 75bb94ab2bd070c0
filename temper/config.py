"""Settings: every one has a ``TEMPER_*`` environment variable and a default."""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEMPER_", extra="ignore")

    home: Path = Field(default=Path("~/.temper"), description="Data directory (database, keys, caches).")
    host: str = Field(default="127.0.0.1", description="Address the server binds.")
    port: int = Field(default=8600, description="Port the server listens on.")
    admin_key: str | None = Field(default=None, description="Admin key; generated on first start if unset.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home.")
    redis_url: str | None = Field(default=None, description="Redis URL for rate-limit and budget state shared by "
                                  "several server replicas (redis://host:6379/0); unset: in memory, one process.")
    log_level: str = Field(default="info", description="Server log level.")
    catalog_poll_s: float = Field(default=1.0, description="How often the server picks up catalogue/key changes.")
    usage_flush_s: float = Field(default=0.5, description="Max delay before usage records are written.")
    upstream_connect_timeout_s: float = Field(default=5.0, description="Connect timeout to remote upstreams.")
    model_health_s: float = Field(default=300.0, ge=0, description="How often each remote model's reachability "
                                  "is checked (GET {base_url}/models); 0: only when an admin asks.")
    local_threads: int = Field(default=0, description="Threads for local models (0: all cores, at most 4).")
    session_ttl_h: float = Field(default=12.0, gt=0, description="How long a console sign-in lasts, in hours.")
    signin_attempts: int = Field(default=30, gt=0, description="Console sign-in attempts per client address, "
                                 "and per username, per 5 minutes.")
    signin_threads: int = Field(default=1, ge=1, description="Threads that check console passwords (scrypt, "
                                "~60 ms of CPU each), apart from the threads other requests use.")
    signin_queue: int = Field(default=16, ge=0, description="Password checks that may wait for a thread; "
                              "beyond that a sign-in gets 503 with retry-after.")
    trusted_proxies: str = Field(default="", description="Reverse proxies whose X-Forwarded-For and "
                                 "X-Forwarded-Proto are believed: addresses or CIDRs, comma-separated; empty: none.")
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto", description="Mark the console cookie Secure: auto = on HTTPS and on loopback hosts.")

    tracing: bool = Field(default=True, description="Trace every gateway call and pipeline into the span store.")
    trace_queue_size: int = Field(default=20_000, gt=0, description="Finished spans waiting for export; more "
                                  "are dropped (and counted) rather than slowing requests.")
    trace_flush_s: float = Field(default=0.5, gt=0, description="Max delay before finished spans are written.")
    trace_payload_chars: int = Field(default=8000, ge=0, description="Characters of each span input/output "
                                     "kept (the rest is cut).")
    trace_mask_pii: bool = Field(default=True, description="Mask e-mail addresses, phone, card and ID numbers "
                                 "in stored span inputs/outputs (a workspace may choose otherwise; "
                                 "non-admins always read masked text).")
    trace_writer: Literal["process", "thread"] = Field(
        default="process", description="Where spans are written to the store: a writer process of the server's "
        "own (off the event loop's core), or a thread in the server.")
    trace_sample_rate: float = Field(default=1.0, ge=0, le=1, description="Share of traces stored, chosen by "
                                     "trace id; a trace with a failed span is always stored.")
    trace_retention_days: float = Field(default=30, gt=0, description="Traces older than this are deleted.")
    otlp_endpoint: str | None = Field(default=None, description="Also export spans to this OTLP/HTTP URL "
                                      "(e.g. http://collector:4318/v1/traces).")
    otlp_headers: str | None = Field(default=None, description="Headers for the OTLP endpoint: k1=v1,k2=v2.")
    otlp_payloads: bool = Field(default=False, description="Include span inputs/outputs in OTLP export.")

    max_output_tokens: int = Field(default=8192, ge=1, description="Tokens a local model may generate for one "
                                   "request, all choices together (n × max_tokens); more gets a 400.")
    max_embed_tokens: int = Field(default=300_000, ge=1, description="Input tokens a local embedding or rerank "
                                  "request may have, after each input is cut to the model's 512 tokens.")
    max_body_kb: int = Field(default=1024, ge=1, description="The largest request body a management API route "
                             "reads (uploads excepted), in KiB; larger ones get 413 before any is read.")
    max_upload_mb: int = Field(default=512, ge=1, description="The largest upload request (knowledge-base files "
                               "and pasted text), in MiB; each file is also limited by max_file_mb.")
    max_file_mb: int = Field(default=200, ge=1, description="The largest file of a knowledge-base upload (or "
                             "pasted text), in MiB; refused (413) while it streams to disk.")
    header_timeout_s: float = Field(default=10.0, gt=0, description="A connection whose request line and headers "
                                    "are not complete this long after it opens or a request starts gets 408 and "
                                    "is closed.")
    body_timeout_s: float = Field(default=30.0, gt=0, description="A request body from which no bytes arrive for "
                                  "this long (while the server reads it) gets 408 and the connection is closed.")
    max_connections: int = Field(default=1000, ge=1, description="Open connections the server keeps; a request "
                                 "on a connection beyond them gets 503 with retry-after and the connection closes.")
    run_jobs: bool = Field(default=True, description="Run jobs in this server (false: it only queues them, for "
                           "another replica or a Ray cluster to run).")
    job_stale_after_s: float = Field(default=30.0, gt=0, description="A running job whose worker has not "
                                     "reported for this long (it died) is queued again.")
    jobs_backend: Literal["local", "ray"] = Field(
        default="local", description="Where jobs run: local (worker processes of this server) "
        "or ray (tasks on a Ray cluster; needs the scale extra).")
    ray_address: str | None = Field(default=None, description="The Ray cluster to join (an address, or auto); "
                                    "unset: the server starts a local one.")
    job_cpus: float = Field(default=0, ge=0, description="CPU slots for jobs in worker processes (and of a local "
                            "Ray cluster); 0: the cores this process may use.")
    job_cancel_grace_s: float = Field(default=10.0, gt=0, description="A cancelled job still running after this "
                                      "long has its worker process killed.")
    artifacts_dir: Path | None = Field(default=None, description="Where job artifacts are kept (default "
                                       "<home>/artifacts; on a Ray cluster, a directory every node shares).")
    kb_index: Literal["qdrant_edge", "pgvector"] = Field(
        default="qdrant_edge", description="Knowledge-base index backend: qdrant_edge (embedded, in the data "
        "directory) or pgvector (PostgreSQL).")
    kb_index_url: str | None = Field(default=None, description="PostgreSQL URL for the pgvector backend "
                                     "(default: TEMPER_DATABASE_URL when that is PostgreSQL).")
    kb_url_allow: str = Field(default="", description="Hosts knowledge bases may fetch pages from, comma-separated "
                              "(docs.example.com, *.example.org, addresses or networks, or URL prefixes); "
                              "wildcards reach public addresses only; empty: no fetching.")
    kb_max_text_chars: int = Field(default=10_000_000, ge=1000, description="Text one document may yield, in "
                                   "characters; the rest is cut, with a warning on the document.")
    kb_max_title_chars: int = Field(default=500, ge=20, le=500, description="A document title's length (and each "
                                    "metadata value's); longer ones are cut, with a warning.")
    kb_max_metadata_kb: int = Field(default=8, ge=1, description="A document's metadata, as JSON, in KiB: more "
                                    "given with an upload is refused (400); fields a file carries past it are left "
                                    "out.")
    kb_max_unzipped_mb: int = Field(default=100, ge=1, description="What a DOCX, XLSX or PPTX may expand to when "
                                    "unzipped, in MiB; a larger one fails before it is expanded.")

    @property
    def kb_url_allow_list(self) -> list[str]:
        return [x.strip() for x in self.kb_url_allow.split(",") if x.strip()]

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for x in value.split(","):
            if x.strip():
                ipaddress.ip_network(x.strip())  # an address or a CIDR; a name or host bits: ValueError
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [x.strip() for x in self.trusted_proxies.split(",") if x.strip()]

    @property
    def kb_index_dsn(self) -> str:
        """The libpq URL of the pgvector backend."""
        url = self.kb_index_url or (self.database_url if (self.database_url or "").startswith("postgresql") else None)
        if not url:
            raise ValueError("TEMPER_KB_INDEX=pgvector needs TEMPER_KB_INDEX_URL (or a PostgreSQL TEMPER_DATABASE_URL)")
        scheme, sep, rest = url.partition("://")
        return "postgresql" + sep + rest if scheme.startswith("postgresql+") else url

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'temper.db'}"

    @property
    def cache_dir(self) -> Path:
        return self.home_dir / "cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    s = Settings()
    s.home_dir.mkdir(parents=True, exist_ok=True)
    s.home_dir.chmod(0o700)  # traces, sources, password hashes: the data directory is its owner's alone
    return s
