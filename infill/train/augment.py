"""Identifier renaming: a training-time augmentation against memorising the corpus's names.

The AR target sees its ~105M training tokens about ten times. Its training loss fell to 1.0 while
the held-out loss stayed at 2.1 (MODELS.md): it learns the corpus's names by heart, and a
held-out file's names are new to it. With `rename_rate`, an example renames the names it
defines itself (module-level functions and classes, parameters, assignment and loop targets,
`as` names) to other identifiers of the corpus of the same style (CamelCase, UPPER, snake,
leading underscore), consistently, wherever they occur as a whole word not after a dot (or
after `self.`/`cls.`). So the model must take a name from the context rather than from memory,
as it must on code it has never seen. Library names (`os.path.join`, other objects' attributes,
builtins) are left alone.
"""

from __future__ import annotations

import builtins
import collections
import keyword
import random
import re

IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
DEFINED = (
    # module-level functions and classes only: a method's name is an API, used as obj.name
    re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.M),
    re.compile(r"^[ \t]*([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)", re.M),  # x = ..., x: T = ...
    re.compile(r"\bfor\s+([A-Za-z_]\w*)\s+in\b"),
    re.compile(r"\bas\s+([A-Za-z_]\w*)"),
)
PARAMETERS = re.compile(r"\bdef\s+\w+\s*\(([^)]*)\)")
PARAMETER = re.compile(r"^\s*\**([A-Za-z_]\w*)")
KEEP = set(keyword.kwlist) | set(getattr(keyword, "softkwlist", [])) | set(dir(builtins)) | {
    "self", "cls"}


def _keepable(name: str) -> bool:
    return name in KEEP or len(name) < 2 or (name.startswith("__") and name.endswith("__"))


def defined_names(text: str) -> set[str]:
    """The names `text` defines itself (see the module docstring)."""
    names = {m.group(1) for pattern in DEFINED for m in pattern.finditer(text)}
    for params in PARAMETERS.finditer(text):
        for part in params.group(1).split(","):
            m = PARAMETER.match(part)
            if m:
                names.add(m.group(1))
    return {n for n in names if not _keepable(n)}


def style(name: str) -> tuple[bool, bool, bool]:
    """(leading underscore, capitalised, all capitals): a new name keeps the old one's."""
    bare = name.lstrip("_")
    return name.startswith("_"), bare[:1].isupper(), bare.isupper()


def name_pool(texts: list[str], rng: random.Random, size: int = 4000,
              sample: int = 300) -> dict[tuple, list[str]]:
    """The names a sample of the corpus defines most often (names in code, not the words of
    its comments), by style: names to rename to."""
    counts: collections.Counter = collections.Counter()
    for text in rng.sample(texts, min(sample, len(texts))):
        counts.update(defined_names(text))
    pool: dict[tuple, list[str]] = {}
    for name, _ in counts.most_common(size):
        pool.setdefault(style(name), []).append(name)
    return pool


def rename_identifiers(text: str, pool: dict[tuple, list[str]], rng: random.Random,
                       share: float = 0.5) -> str:
    """`text` with each name it defines renamed, with probability `share`, to a name of `pool`
    of the same style that `text` does not use, the same new name at every occurrence."""
    chosen = sorted(n for n in defined_names(text) if rng.random() < share)
    used = set(IDENTIFIER.findall(text))
    mapping = {}
    for name in chosen:
        candidates = pool.get(style(name))
        for _ in range(8 if candidates else 0):  # a few tries for a name not yet in use
            new = rng.choice(candidates)
            if new not in used:
                mapping[name] = new
                used.add(new)
                break
    if not mapping:
        return text
    names = "|".join(map(re.escape, mapping))
    # not after a dot (another object's attribute), except self./cls. (a class body's names)
    pattern = re.compile(rf"(?:(?<![\w.])|(?<=self\.)|(?<=cls\.))({names})\b")
    return pattern.sub(lambda m: mapping[m.group(1)], text)
