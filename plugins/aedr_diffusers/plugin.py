"""Registers the eight latent diffusion models of the AEDR paper (autoencoders and generators) and the
``aedr generate`` / ``aedr prompts`` commands."""

from __future__ import annotations

import aedr


@aedr.hookimpl
def register_models(register):
    from .model import DiffusersModel  # (torch) imported when the models are registered
    from .specs import PAPER_MODELS

    for spec in PAPER_MODELS:
        register(DiffusersModel(spec))


@aedr.hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)
