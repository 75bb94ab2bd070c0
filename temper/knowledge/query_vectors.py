"""Query vectors through the model client, from an LRU cache when the same query was embedded before."""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from temper.models.client import ModelClient

QUERY_CACHE_SIZE = 4096


class QueryVectors:
    def __init__(self, models: ModelClient, size: int = QUERY_CACHE_SIZE) -> None:
        self.models = models
        self.size = size
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    async def vector(self, model: str, text: str) -> tuple[np.ndarray, bool]:
        """One query's vector and whether it came from the cache."""
        self.models.model(model, "embedding")  # a cached vector is still only for callers allowed the model
        key = (model, text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit, True
        vector = (await self.models.embed(model, [text], "query")).vectors[0]
        with self._lock:
            self._cache[key] = vector
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vector, False
