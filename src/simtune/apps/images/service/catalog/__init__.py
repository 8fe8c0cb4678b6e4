"""Indexing a catalog: any folder of photos (plain, class folders or a labels file) with its own metadata,
kept in sync with the folder, resumable, in bounded memory. ``sync_catalog`` is the entry point."""
