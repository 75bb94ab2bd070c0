"""The web console: a light client (ES modules, no build step) served from the package, calling the
management API and ``/v1`` with the browser's session cookie."""
