"""Entry point ``aeroblade`` of the ``aedr`` plugin group."""

import aedr

from .method import Aeroblade, AerobladeMSE, AerobladeSSIM


@aedr.hookimpl
def register_methods(register):
    register(Aeroblade)
    register(AerobladeMSE)
    register(AerobladeSSIM)
