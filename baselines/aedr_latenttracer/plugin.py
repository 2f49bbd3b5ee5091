"""Entry point ``latenttracer`` of the ``aedr`` plugin group."""

import aedr

from .method import LatentTracer


@aedr.hookimpl
def register_methods(register):
    register(LatentTracer)
