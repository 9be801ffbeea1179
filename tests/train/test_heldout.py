"""Held-out single-line tasks: drawn from the chosen held-out packages, scored per package."""

from types import SimpleNamespace

import pytest

from infill.cli import main
from infill.engines import Engines, ModelConfig
from infill.models.loading import DEFAULT_MODELS
from infill.train import corpus
from infill.train.heldout import (evaluate, evaluate_in_processes, heldout_files, line_tasks,
                                  run)


def held_out_data(folder):
    files = [corpus.SourceFile(package, f"/sp/{package}/m{i}.py",
                               "".join(f"{package}_value_{i}_{j} = {j}\n" for j in range(6)))
             for package in ("click", "jinja2") for i in range(3)]
    corpus.write_jsonl(files, folder / "heldout.jsonl")
    return folder


class KnowsClickOnly:
    """Completes click's lines exactly and nothing else."""

    def complete(self, request):
        known = request.prefix.startswith("click_")
        line = request.prefix.split("\n")[-2].split(" = ")[0].rsplit("_", 1)[0]
        n = len(request.prefix.split("\n")) - 1
        text = f"{line}_{n} = {n}" if known else "pass"
        return [SimpleNamespace(text=text, ms=1.0, forwards=1, tokens=3)]


def test_exact_match_is_reported_per_package(tmp_path):
    tasks = line_tasks(heldout_files(held_out_data(tmp_path)), 20)
    result = evaluate(KnowsClickOnly(), tasks, "speculative")
    by_package = result["by_package"]
    assert set(by_package) == {"click", "jinja2"}
    assert by_package["click"]["exact_match"] == 1.0 and by_package["jinja2"]["exact_match"] == 0.0
    assert by_package["click"]["tasks"] + by_package["jinja2"]["tasks"] == 20
    assert result["exact_match"] == pytest.approx(by_package["click"]["tasks"] / 20)


def test_tasks_come_from_the_chosen_packages_only(tmp_path):
    files = heldout_files(held_out_data(tmp_path), ["Jinja2"])
    assert {f.package for f in files} == {"jinja2"}
    assert {t.package for t in line_tasks(files, 10)} == {"jinja2"}


def test_a_package_that_is_not_held_out_is_a_clear_error(tmp_path):
    args = SimpleNamespace(data=held_out_data(tmp_path), packages=["numpy"], tasks=5,
                           models=None, device="cpu", engine="speculative", json=None, workers=1,
                           diffusion_length="ar")
    with pytest.raises(SystemExit, match="no held-out files of numpy; the held-out packages are"):
        run(args)


@pytest.mark.skipif(not (DEFAULT_MODELS["target"] / "config.json").exists(),
                    reason="needs the shipped target")
def test_tasks_dealt_out_to_processes_give_the_figures_of_one_process(tmp_path):
    tasks = line_tasks(heldout_files(held_out_data(tmp_path)), 6)
    config = ModelConfig(device="cpu", drafter="ngram")
    alone = evaluate(Engines(config), tasks, "speculative")
    dealt = evaluate_in_processes(config, tasks, "speculative", workers=2)
    assert dealt["by_package"] == alone["by_package"]
    for key in ("tasks", "exact_match", "edit_similarity", "mean_forwards", "mean_tokens"):
        assert dealt[key] == pytest.approx(alone[key]), key


def test_workers_must_be_a_positive_integer(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "heldout", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "use an integer of at least 1, not '0'" in capsys.readouterr().err
