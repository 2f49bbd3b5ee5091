"""Registers the TAESD family: TAESD, TAESDXL, TAESD3, TAEF1 (diffusers ``AutoencoderTiny``) and TAEF2."""

from __future__ import annotations

import aedr


@aedr.hookimpl
def register_models(register):
    from .models import TINY_MODELS, TAEF2Model, TinyDiffusersModel  # (torch) imported when registered

    for spec in TINY_MODELS:
        register(TinyDiffusersModel(spec))
    register(TAEF2Model())
