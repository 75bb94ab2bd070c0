"""Workspaces, API keys and (later) members, roles and audit."""
