"""Long-running operations as jobs: persisted in the database (``store``), run by a worker pool (``local``)."""
