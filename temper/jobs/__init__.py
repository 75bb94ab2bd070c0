"""Long-running operations as jobs, persisted in the database (``store``): kinds registered by plugins
(``kinds``) run by a runner (``runner``: worker processes of the server, or Ray), with a ``JobContext`` for
progress, events and artifacts; ``local`` is the thread pool the knowledge package still uses."""
