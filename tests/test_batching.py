"""``batch_size="auto"``: the search for the largest batch that fits, its cache, and its wiring into
methods, the bench config and the command line. The device's out-of-memory error is simulated here
(no accelerator on CI): a method that raises CUDA's ``OutOfMemoryError`` above a batch size."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import aedr
from aedr import batching
from aedr.bench.config import BenchConfig, ConfigError
from aedr.methods.base import MethodOptions


@given(capacity=st.integers(min_value=1, max_value=600), limit=st.integers(min_value=1, max_value=600))
@settings(max_examples=200, deadline=None)
def test_largest_batch_finds_the_capacity_in_logarithmic_tries(capacity, limit):
    tried = []

    def fits(n: int) -> bool:
        tried.append(n)
        return n <= capacity

    assert batching.largest_batch(fits, limit=limit) == min(capacity, limit)
    assert all(1 <= n <= limit for n in tried)
    assert len(tried) <= 2 * int(np.ceil(np.log2(limit + 1))) + 2


def test_largest_batch_when_one_image_does_not_fit():
    with pytest.raises(MemoryError, match="not even a batch of one"):
        batching.largest_batch(lambda n: False)


def test_out_of_memory_errors_are_recognised_and_others_are_not():
    assert batching.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert batching.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not batching.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not batching.is_out_of_memory(ValueError("out of memory"))


@dataclasses.dataclass
class MemoryBoundOptions(MethodOptions):
    iterations: int = 100
    capacity: int = 6  # images of 32x32 per batch that "fit"; scaled by the image area


class MemoryBound(aedr.Method):
    """Scores like a cheap method, but "runs out of device memory" when a batch has more pixels than
    ``capacity`` 32x32 images; records every batch it ran (size, iterations)."""

    name = "memory-bound"
    Options = MemoryBoundOptions
    probe_options = {"iterations": 2}
    calls: list = []

    def score_batch(self, ctx, x0):
        type(self).calls.append((x0.shape[0], self.options.iterations))
        if x0.shape[0] * x0.shape[2] * x0.shape[3] > self.options.capacity * 32 * 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return x0.float().mean(dim=(1, 2, 3)).numpy()


@pytest.fixture
def model():
    return aedr.get_plugins().model("zoo-kl-a")


def test_search_probes_with_the_cheap_options_and_finds_the_capacity(model):
    MemoryBound.calls = []
    method = MemoryBound(capacity=6)
    assert batching.search(method, model, (32, 32)) == 6
    assert batching.search(method, model, (64, 32)) == 3  # twice the pixels, half the images
    assert {it for _, it in MemoryBound.calls} == {2}  # probed with two iterations, not 100
    assert method.options.iterations == 100 and method.options.batch_size == 8  # the method itself unchanged


def test_a_failure_that_is_not_out_of_memory_propagates(model):
    class Broken(MemoryBound):
        def score_batch(self, ctx, x0):
            raise ValueError("a bug, not a full device")

    with pytest.raises(ValueError, match="a bug"):
        batching.search(Broken(), model, (32, 32))


def test_auto_searches_once_then_reads_the_cache(model, tmp_path, monkeypatch):
    monkeypatch.setenv("AEDR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(batching, "on_cpu", lambda method: False)  # as on an accelerator
    monkeypatch.setattr(batching, "_memo", {})
    MemoryBound.calls = []
    method = MemoryBound(capacity=10, batch_size="auto")
    images = [aedr.LoadedImage.from_array(np.full((32, 32, 3), 10 * i, np.uint8), f"im{i}") for i in range(12)]
    scores = method.score(model, images)
    searched = len(MemoryBound.calls)
    run = [n for n, it in MemoryBound.calls if it == 100]
    assert run == [9, 3]  # the 12 images in batches of 90 % of the capacity found
    np.testing.assert_allclose(scores, MemoryBound(capacity=10, batch_size=1).score(model, images))
    saved = json.loads((tmp_path / batching.CACHE_FILE).read_text())["batch_sizes"]
    assert list(saved.values()) == [9] and "zoo-kl-a|memory-bound|" in next(iter(saved))
    batching._memo.clear()  # a new process: the answer comes from the file
    MemoryBound.calls = []
    MemoryBound(capacity=10, batch_size="auto").score(model, images)
    assert [n for n, _ in MemoryBound.calls] == [9, 3]  # no probing: the cached answer
    assert searched > 3


def test_auto_on_the_cpu_keeps_the_pixel_cap(model):
    """On the CPU, auto is the default batch size and large images still go a few at a time."""
    MemoryBound.calls = []
    images = [aedr.LoadedImage.from_array(np.full((1024, 1024, 3), i, np.uint8), f"big{i}") for i in range(3)]
    MemoryBound(capacity=10**6, batch_size="auto").score(model, images)
    assert [n for n, _ in MemoryBound.calls] == [2, 1]  # 8 x 512 x 512 pixels per batch at most


def test_auto_on_the_cpu_is_the_methods_default_without_a_search(model):
    MemoryBound.calls = []
    assert batching.auto_batch_size(MemoryBound(batch_size="auto"), model, (32, 32)) == 8
    assert MemoryBound.calls == []


def test_auto_scores_equal_fixed_batch_scores(model):
    images = aedr.get_plugins().dataset("zoo-real-eval").images()[:5]
    auto = aedr.get_method("aedr", batch_size="auto").score(model, images)
    fixed = aedr.get_method("aedr", batch_size=2).score(model, images)
    np.testing.assert_allclose(auto, fixed, rtol=1e-5)


def test_batch_size_values_in_options_and_config():
    assert MethodOptions(batch_size="auto").batch_size == "auto"
    with pytest.raises(TypeError):
        MethodOptions(batch_size="big")
    with pytest.raises(ValueError, match="batch_size must be >= 1 or 'auto'"):
        aedr.get_method("aedr", batch_size=0)
    assert BenchConfig(batch_size="auto").batch_size == "auto"
    with pytest.raises(ConfigError):
        BenchConfig(batch_size="many")
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        BenchConfig(batch_size=0)
    assert BenchConfig(batch_size="auto").options_for("aedr")["batch_size"] == "auto"


def test_batch_size_flag(monkeypatch):
    from conftest import cli_runner

    run = cli_runner(aedr.get_plugins(), monkeypatch)
    result = run("score", "--model", "zoo-kl-a", "--batch-size", "lots", ".", ok=False)
    assert result.exit_code == 2 and "--batch-size expects a whole number >= 1 or 'auto', got 'lots'" in result.output
