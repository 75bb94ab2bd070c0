"""A knowledge base's settings: how it chunks, retrieves and answers. Stored as JSON on the knowledge base;
every field has a default, and a request may override the retrieval and answer fields for one call."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from temper.errors import InvalidRequest, validation_params
from temper.knowledge.chunking import ChunkingConfig

DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
LOCAL_RERANKER = "embedding"  # rerank with the stored vectors: no model call, see retrieval.py


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Chunking(Settings):
    strategy: Literal["structure", "fixed", "parent_child"] = "structure"
    chunk_tokens: int = Field(350, ge=16, le=480, description="Target size of a searched chunk, in tokens.")
    overlap_tokens: int = Field(50, ge=0, description="Overlap of fixed windows and of parent–child children.")
    parent_tokens: int = Field(1200, ge=16, description="Size of parents (parent_child), in tokens.")

    @model_validator(mode="after")
    def _consistent(self) -> Chunking:
        try:
            self.config()
        except ValueError as e:
            raise ValueError(str(e)) from None
        return self

    def config(self) -> ChunkingConfig:
        return ChunkingConfig(strategy=self.strategy, chunk_tokens=self.chunk_tokens,
                              overlap_tokens=self.overlap_tokens, parent_tokens=self.parent_tokens)


class Enrichment(Settings):
    """Optional: a chat model writes a summary, keywords and likely questions for every chunk, indexed as
    boosted keyword fields. Costs one model call per chunk."""

    model: str | None = Field(None, description="A chat model of the plaza; none: no enrichment.")


class Retrieval(Settings):
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    top_k: int = Field(5, ge=1, le=100, description="Results returned.")
    candidates: int = Field(30, ge=1, le=500, description="Hits taken from each retriever before fusion.")
    weights: dict[Literal["dense", "keyword"], float] = Field(
        default_factory=lambda: {"dense": 1.0, "keyword": 1.0}, description="Reciprocal-rank-fusion weights.")
    rrf_k: int = Field(60, ge=1, description="The k of reciprocal rank fusion: 1 / (k + rank).")
    rerank: bool = True
    rerank_model: str = Field(LOCAL_RERANKER, description="A plaza rerank model, or 'embedding': the local "
                              "reranker over the stored vectors (no model call).")
    rerank_candidates: int = Field(20, ge=1, le=200, description="Fused results passed to the reranker.")
    threshold: float | None = Field(None, description="Drop results whose final score is below this.")
    parents: bool = Field(True, description="Hand parents (parent_child chunking) to the model, not children.")
    multi_query: int = Field(0, ge=0, le=5, description="Extra rewrites of the question by a chat model, "
                             "each searched and fused.")
    hyde: bool = Field(False, description="Also search with a hypothetical answer written by a chat model.")
    rewrite_model: str = Field(DEFAULT_CHAT_MODEL, description="The chat model for rewrites and condensation.")


class Answer(Settings):
    model: str = Field(DEFAULT_CHAT_MODEL, description="The chat model that writes the answer.")
    min_relevance: float | None = Field(
        None, description="Refuse when no source scores at least this after reranking. None: the reranker's "
        "default (the local reranker: 2.75 standard deviations above the query's background).")
    max_context_tokens: int = Field(1500, ge=100, le=100_000, description="Budget for the numbered sources.")
    max_tokens: int = Field(300, ge=1, le=8192, description="Most tokens the answer may have.")
    temperature: float = Field(0.0, ge=0, le=2)


class KnowledgeConfig(Settings):
    chunking: Chunking = Field(default_factory=Chunking)
    enrichment: Enrichment = Field(default_factory=Enrichment)
    retrieval: Retrieval = Field(default_factory=Retrieval)
    answer: Answer = Field(default_factory=Answer)


def parse(data: dict[str, Any] | None, what: str = "config") -> KnowledgeConfig:
    """Validate a stored or submitted config; a bad one is a 400 naming the field."""
    try:
        return KnowledgeConfig.model_validate(data or {})
    except ValidationError as e:
        raise _invalid(e, what) from None


def merged(base: Settings, override: dict[str, Any] | None, what: str) -> Any:
    """``base`` with the fields of ``override`` replaced (a per-request override), validated."""
    if not override:
        return base
    try:
        return type(base).model_validate({**base.model_dump(), **override})
    except ValidationError as e:
        raise _invalid(e, what) from None


def _invalid(e: ValidationError, what: str) -> InvalidRequest:
    first = e.errors()[0]
    where = ".".join(str(x) for x in (what, *first["loc"]))
    return InvalidRequest(f"Invalid {where}: {first['msg']}.", param=where, code="invalid_value",
                          params=validation_params(first, where))
