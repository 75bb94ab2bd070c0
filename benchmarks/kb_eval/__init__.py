"""Retrieval evaluation on the Debian Reference: the corpus loader, the labelled questions and their checker."""
