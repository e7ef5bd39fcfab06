"""The audiozoo version (one place; read by the package, the model format and the build)."""

__version__ = "0.1.0.dev0"
