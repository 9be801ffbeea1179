import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` as well as `python -m pytest`
    sys.path.insert(0, str(ROOT))

import tiny_checkpoints as tiny  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def modules_cache(tmp_path_factory):
    """transformers copies a checkpoint's own code (trust_remote_code) into a modules cache under
    the user's home; the tests keep theirs in a temporary folder."""
    import transformers.dynamic_module_utils as dynamic

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf_modules")))
        yield


@pytest.fixture(scope="session")
def ar_folder(tmp_path_factory):
    """family -> folder of its tiny AR checkpoint, built once per session on first use."""
    built = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = tiny.make_ar(tmp_path_factory.mktemp(f"ar_{family}"), family)
        return built[family]

    return get


@pytest.fixture(scope="session")
def infill_diffusion(tmp_path_factory):
    return tiny.make_infill_diffusion(tmp_path_factory.mktemp("diffusion_infill"))


@pytest.fixture(scope="session")
def llada(tmp_path_factory):
    return tiny.make_llada(tmp_path_factory.mktemp("llada"))


@pytest.fixture(scope="session")
def dream(tmp_path_factory):
    return tiny.make_dream(tmp_path_factory.mktemp("dream"))
