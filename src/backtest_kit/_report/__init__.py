"""Markdown reports: the shared table renderer and the per-report documents."""
