"""The search fixtures (a run indexed with a tiny embedder, a live server) for every test here."""

from .search_fixtures import indexed_run, live_server  # noqa: F401
