"""The zoo's plugin hooks: its models, its real-image sets and the ``aedr zoo`` commands.

``AEDR_ZOO_WEIGHTS=DIR`` points the zoo at weights trained elsewhere (``aedr zoo train --out DIR``)
instead of the ones shipped in the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import aedr

from . import data
from .models import ZOO
from .store import WEIGHTS_DIR

if TYPE_CHECKING:
    from .zoo import ZooModel

ENV_WEIGHTS = "AEDR_ZOO_WEIGHTS"


def weights_dir() -> Path:
    """The weights folder in use: ``$AEDR_ZOO_WEIGHTS`` or the shipped one."""
    env = os.environ.get(ENV_WEIGHTS, "").strip()
    return Path(env) if env else WEIGHTS_DIR


def zoo_models() -> list[ZooModel]:
    from .zoo import ZooModel  # (torch): imported when the models are registered, not with the hooks

    folder = weights_dir()
    return [ZooModel(spec, folder) for spec in ZOO]


@aedr.hookimpl
def register_models(register):
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
