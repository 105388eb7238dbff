"""``python -m runtimectl``: the same as the ``runtimectl`` command. Holds nothing of its own."""

from runtimectl.cli import main

main()
