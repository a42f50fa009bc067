"""tortoise built-in migrations, database-neutral: the same files for SQLite and PostgreSQL. Regenerate with `make migrations`."""
