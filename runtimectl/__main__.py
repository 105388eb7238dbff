"""``python -m runtimectl``: the same as the ``runtimectl`` command. Holds nothing of its own."""

from .app import main

main()
