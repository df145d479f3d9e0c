"""Persistence: the engine (`engine`), the tables (`tables`), the key-set cursor (`keyset`) and
the migrations (`migrate`, `migrations/`). Importing the tables loads no Alembic."""
