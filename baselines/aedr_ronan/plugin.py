"""Entry point ``ronan`` of the ``aedr`` plugin group."""

import aedr

from .method import RONAN


@aedr.hookimpl
def register_methods(register):
    register(RONAN)
