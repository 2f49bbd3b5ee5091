"""A method plugin in one module: the mean absolute difference between an image and its first
reconstruction D(E(x)), lower = belonging. The reconstruction goes through
:func:`aedr.reconstruction.first_pass`, so a benchmark shares it with the other methods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aedr
from aedr.reconstruction import first_pass


@dataclass
class ReconstructionL1Options(aedr.MethodOptions):
    latent: Literal["sample", "mean"] = "sample"


class ReconstructionL1(aedr.Method):
    name = "example-l1"
    description = "example plugin: mean |x - D(E(x))|"
    Options = ReconstructionL1Options
    cost = aedr.CostHint(encoder_passes=1, decoder_passes=1, relative=0.5)

    def score_batch(self, ctx, x0):
        ae = ctx.autoencoder
        x1 = first_pass(ae, x0, mode=self.options.latent, seeds=ctx.seeds, keys=ctx.keys, cache=ctx.cache).x1
        return (x1.float().cpu() - x0).abs().mean(dim=(1, 2, 3)).double().numpy()


@aedr.hookimpl
def register_methods(register):
    register(ReconstructionL1)
