"""Prompt management: templates with immutable numbered versions, movable labels, variables and model config.

``store`` holds the capability functions; ``library`` the starter templates in Chinese and English.
"""
