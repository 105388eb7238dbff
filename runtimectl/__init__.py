"""runtimectl: the command line for runtimed."""

from runtimed import __version__  # noqa: F401  (runtimectl.__version__ is the daemon's version)
