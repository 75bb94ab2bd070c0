"""Knowledge-base indexes: dense and keyword search over one knowledge base's chunks.

``QdrantEdgeIndex`` is the embedded default; ``filters`` holds the filter language every backend compiles,
``analyzer`` the keyword terms every backend indexes.
"""
from temper.knowledge.index.analyzer import terms
from temper.knowledge.index.qdrant_edge import QdrantEdgeIndex

__all__ = ["QdrantEdgeIndex", "terms"]
