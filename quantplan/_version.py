"""The one place quantplan's version is written: pyproject.toml reads it from here
(``[tool.setuptools.dynamic]``), and start-up reads it without ``importlib.metadata``, whose
import (the ``email`` package) costs every command tens of milliseconds."""

__version__ = "0.1.0"
