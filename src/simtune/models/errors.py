"""What loading or exporting a saved model raises: one type each, so a command line prints one line."""


class ModelFileError(ValueError):
    """A saved model file is missing, truncated, edited or malformed; the message names the file."""


class UntrustedClassError(ModelFileError):
    """A saved model names a class the user has not allowed; the message says how to allow it."""

    def __init__(self, message: str, class_path: str) -> None:
        super().__init__(message)
        self.class_path = class_path  # "module:QualName", as saved


class OnnxExportError(ValueError):
    """An ONNX export failed, or its graph does not compute what the eager model computes."""
