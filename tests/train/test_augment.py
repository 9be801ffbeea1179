"""Identifier renaming (`infill.train.augment`): what is renamed, what is left, determinism,
and its use in the AR batches."""

import random

import torch

from infill.train.augment import IDENTIFIER, defined_names, name_pool, rename_identifiers, style
from infill.train.data import BatchStream
from infill.train.tokenizer import train_tokenizer

SOURCE = '''import os


def load(path, *, mode="r"):
    with open(path, mode) as handle:
        data = handle.read()
    for line in data.split():
        print(line, os.path.join(path, line), len(line))
    return data


class Store:
    size = 3

    def get(self, key):
        return self.size + key + other.size
'''
POOL = {style(n): [] for n in ("lower", "Camel", "UPPER", "_private")}
for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
             "kappa", "Widget", "Gadget", "LIMIT", "_cache"):
    POOL.setdefault(style(name), []).append(name)


def test_the_names_a_text_defines_itself():
    assert defined_names(SOURCE) == {"load", "path", "mode", "handle", "data", "line", "Store",
                                     "size", "key"}  # not os, open, print, self, get (a method)


def test_renaming_is_consistent_and_leaves_library_names_alone():
    out = rename_identifiers(SOURCE, POOL, random.Random(0), share=1.0)
    for name in ("load", "path", "handle", "data", "line", "Store", "key"):
        assert f" {name}" not in out and f"({name}" not in out
    # what the text does not define, and attributes of other objects, stay
    for kept in ("os.path.join", "open(", "print(", "len(", ".read()", ".split()", "def get",
                 "other.size"):
        assert kept in out
    assert "self.size" not in out  # a class body's name follows through self.
    # word for word the same text but for names, each old name always the same new one
    before, after = IDENTIFIER.findall(SOURCE), IDENTIFIER.findall(out)
    assert len(before) == len(after)
    pairs = {(a, b) for a, b in zip(before, after) if a != b}
    assert len({a for a, _ in pairs}) == len(pairs) == len({b for _, b in pairs}) >= 5
    assert "class Widget" in out or "class Gadget" in out  # CamelCase stays CamelCase
    compile(out, "renamed", "exec")  # still Python


def test_same_seed_same_text_and_share_zero_changes_nothing():
    a = rename_identifiers(SOURCE, POOL, random.Random(3))
    assert a == rename_identifiers(SOURCE, POOL, random.Random(3))
    assert rename_identifiers(SOURCE, POOL, random.Random(3), share=0.0) == SOURCE


def test_the_pool_holds_defined_names_by_style():
    pool = name_pool([SOURCE] * 3, random.Random(0))
    assert set(pool[style("a")]) == {"load", "path", "mode", "handle", "data", "line", "size", "key"}
    assert pool[style("Ab")] == ["Store"]


OTHER = """def total(values, start=0):
    result = start
    for item in values:
        result += item
    return result
"""


def test_ar_batches_rename_only_when_asked():
    tokenizer = train_tokenizer([SOURCE, OTHER] * 20, vocab_size=300)

    def batch(rate):
        stream = BatchStream("ar", [SOURCE, OTHER], tokenizer, batch_size=8, seq_len=128,
                             seed=0, fim_rate=0.0, rename_rate=rate)
        return next(iter(stream))["input_ids"]

    plain = batch(0.0)
    assert torch.equal(plain, batch(0.0))
    texts = tokenizer.batch_decode(batch(1.0).tolist())
    assert any("def load" not in t for t in texts)  # renamed rows
    assert all("os.path.join" in t for t in texts if "join" in t)
