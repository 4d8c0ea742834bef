"""Export directories: writing a trained model for serving, and reading it back verified."""

from recsys.export.format import FORMAT_VERSION, ExportError
from recsys.export.reader import ExportBundle, load_export
from recsys.export.writer import export_checkpoint, write_export

__all__ = ["FORMAT_VERSION", "ExportBundle", "ExportError", "export_checkpoint", "load_export", "write_export"]
