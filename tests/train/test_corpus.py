"""The held-out split: no held-out package reaches training, vendored copies included."""

from infill.train.corpus import SourceFile, split


def source(package, path):
    return SourceFile(package, path, "x = 1\n")


def test_held_out_packages_vendored_in_others_are_trained_on_by_no_one():
    site = "/venv/lib/python3.12/site-packages"
    files = [
        source("idna", f"{site}/idna/core.py"),                      # held out
        source("pip", f"{site}/pip/_vendor/idna/core.py"),           # a vendored copy: dropped
        source("pip", f"{site}/pip/_vendor/colorama/ansi.py"),       # dropped
        source("boto3", f"{site}/boto3/docs/attr.py"),               # a module named attr: dropped
        source("pip", f"{site}/pip/_internal/cli/main.py"),          # trained on
        source("requests", f"{site}/requests/models.py"),            # trained on
        source("click_extra", f"{site}/click_extra/core.py"),        # only a similar name
        source("attrs", f"/home/click/{site}/attrs/__init__.py"),     # held out, whatever the root
    ]
    train, held_out = split(files)
    assert [f.path for f in held_out] == [files[0].path, files[7].path]
    assert [f.path for f in train] == [files[4].path, files[5].path, files[6].path]


def test_a_root_folder_named_like_a_held_out_package_does_not_drop_files():
    train, _ = split([source("numpy", "/srv/click/site-packages/numpy/core.py")])
    assert len(train) == 1
