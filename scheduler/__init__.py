"""APScheduler jobs that call handlers; a kv lock per run so many instances run each job once.

May import handlers and core; never the web layer, bot or channels directly (ports are wired
by the composition root)."""
