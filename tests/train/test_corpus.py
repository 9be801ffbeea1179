"""The held-out split: no held-out package reaches training, vendored copies included; an
extra root adds only the packages the machine lacks."""

import json

from infill.train.corpus import SourceFile, prepare, split


def source(package, path):
    return SourceFile(package, path, "x = 1\n")


def test_held_out_packages_vendored_in_others_are_trained_on_by_no_one():
    site = "/venv/lib/python3.12/site-packages"
    files = [
        source("idna", f"{site}/idna/core.py"),                      # held out
        source("pip", f"{site}/pip/_vendor/idna/core.py"),           # a vendored copy: dropped
        source("pip", f"{site}/pip/_vendor/colorama/ansi.py"),       # dropped
        source("typer", f"{site}/typer/_click/core.py"),             # renamed vendored copy: dropped
        source("boto3", f"{site}/boto3/docs/attr.py"),               # a module named attr: dropped
        source("pip", f"{site}/pip/_internal/cli/main.py"),          # trained on
        source("requests", f"{site}/requests/models.py"),            # trained on
        source("click_extra", f"{site}/click_extra/core.py"),        # only a similar name
        source("attrs", f"/home/click/{site}/attrs/__init__.py"),     # held out, whatever the root
    ]
    train, held_out = split(files)
    assert [f.path for f in held_out] == [files[0].path, files[8].path]
    assert [f.path for f in train] == [files[5].path, files[6].path, files[7].path]


def test_a_file_copying_much_of_a_held_out_file_under_another_name_is_not_trained_on():
    lines = [f"    result = compute_the_value_of_{i}(argument, other_argument)\n" for i in range(20)]
    held = SourceFile("click", "/sp/click/core.py", "".join(lines))
    copy = SourceFile("typer", "/sp/typer/core.py", "".join(lines[:8]) + "x = 1\n" * 5)
    inspired = SourceFile("flask", "/sp/flask/cli.py", "".join(lines[:2] + [
        f"    answer = something_else_entirely_{i}(other)\n" for i in range(20)]))
    train, _ = split([held, copy, inspired])
    assert train == [inspired]


def test_a_root_folder_named_like_a_held_out_package_does_not_drop_files():
    train, _ = split([source("numpy", "/srv/click/site-packages/numpy/core.py")])
    assert len(train) == 1


def write_module(root, relative, body):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    # long enough and code-like enough to pass the corpus filters
    path.write_text("".join(f"def {body}_{i}(value):\n    return value + {i}\n\n" for i in range(40)))


def test_an_extra_root_adds_only_packages_the_machine_lacks_and_never_held_out_ones(tmp_path):
    machine, extra = tmp_path / "site-packages", tmp_path / "extra"
    write_module(machine, "requests/models.py", "machine")
    write_module(extra, "requests/models.py", "newer_version")      # the machine has requests
    write_module(extra, "django/urls.py", "route")                  # new: trained on
    write_module(extra, "django/copy.py", "route")                  # a duplicate of urls.py
    write_module(extra, "jinja2/lexer.py", "lex")                   # held out: never trained on
    write_module(extra, "flask/_vendor/click/core.py", "vendored")  # a vendored held-out copy

    stats = prepare(tmp_path / "data", [machine], [extra])

    trained = [json.loads(line)["path"] for line in (tmp_path / "data/train.jsonl").open()]
    assert trained == [str(machine / "requests/models.py"), str(extra / "django/copy.py")]
    assert stats["extra_files"] == 3 and stats["train_files"] == 2
