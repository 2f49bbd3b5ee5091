"""The zoo's plugin hooks: its models, its real-image sets and the ``aedr zoo`` commands.

``AEDR_ZOO_WEIGHTS=DIR`` points the zoo at weights trained elsewhere (``aedr zoo train --out DIR``)
instead of the ones shipped in the package (see :mod:`aedr_zoo.store`).
"""

from __future__ import annotations

import aedr

from . import data


@aedr.hookimpl
def register_models(register):
    from .zoo import zoo_models  # (torch): imported when the models are registered, not with the hooks

    for model in zoo_models():
        register(model)


@aedr.hookimpl
def register_datasets(register):
    for split in data.SPLITS:
        register(data.image_set(split))


@aedr.hookimpl
def register_commands(cli):
    from .cli import zoo_app

    cli.add_typer(zoo_app, name="zoo")
