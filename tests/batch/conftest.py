"""Tiny randomly initialised models of the shipped architectures, saved as model folders, so
batch tests load them through the real loading code in well under a second."""

from pathlib import Path

import pytest
import torch

from batch_cases import build_tiny_models


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; on a shared CPU, more threads mostly wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_engines(tiny_models):
    from infill.engines import Engines, ModelConfig

    return Engines(ModelConfig(target=str(tiny_models["target"]),
                               diffusion=str(tiny_models["diffusion"]), device="cpu",
                               drafter="ngram"))
