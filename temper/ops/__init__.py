"""Effect operations: tracing, analytics, scores and annotations, prompt management."""
