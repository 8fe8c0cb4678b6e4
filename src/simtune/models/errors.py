"""What loading a saved model raises: one type, so a command line can print it as one line."""


class ModelFileError(ValueError):
    """A saved model file is missing, truncated, edited or malformed; the message names the file."""


class UntrustedClassError(ModelFileError):
    """A saved model names a class the user has not allowed; the message says how to allow it."""
