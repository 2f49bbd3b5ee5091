"""Entry point ``hfi`` of the ``aedr`` plugin group."""

import aedr

from .method import HFI, HFIMSE


@aedr.hookimpl
def register_methods(register):
    register(HFI)
    register(HFIMSE)
