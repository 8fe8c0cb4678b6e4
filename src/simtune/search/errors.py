"""Errors a search user can cause and fix. Each message names the input and what is wrong.

They subclass ``ValueError`` so callers that only care about "bad input" catch one thing; the HTTP
layer maps each class to its own 4xx status.
"""


class SearchError(ValueError):
    """Base class for every bad-input error raised by ``simtune.search``."""


class InvalidQueryError(SearchError):
    """A malformed query: bad ``k``, unknown filter field, wrong vector size, bad point id."""


class UnknownPointError(SearchError):
    """A well-formed point id that is not in the index."""


class ModelMismatchError(SearchError):
    """The index was built with a different model than the one used to query or extend it."""


class InvalidImageError(SearchError):
    """Bytes that are not a decodable image (wrong format, truncated, corrupt)."""


class ImageTooLargeError(SearchError):
    """An image over the byte or pixel limit (decompression-bomb guard)."""


class IndexUnavailableError(SearchError):
    """The index location is missing, unreadable, or held by another process."""
