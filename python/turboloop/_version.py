"""The version of turboloop: the one place it is written.

pyproject.toml reads it from here when a distribution is built, and
turboloop.__version__ is this string."""

__version__ = "0.1.0"
