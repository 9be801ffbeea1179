"""The type-through cache: typing the start of a shown suggestion gets the rest."""

from lsp_server.typethrough import EDGE, TypeThroughCache

URI = "file:///a.py"


def test_typing_into_a_suggestion_returns_the_rest():
    cache = TypeThroughCache()
    cache.store(URI, "x = ", "\nprint(x)", ["compute(1, 2)"])
    assert cache.lookup(URI, "x = comp", "\nprint(x)") == ["ute(1, 2)"]
    assert cache.lookup(URI, "x = ", "\nprint(x)") == ["compute(1, 2)"]  # the same place
    assert cache.hits == 2


def test_misses():
    cache = TypeThroughCache()
    cache.store(URI, "x = ", "\n", ["abc"])
    assert cache.lookup(URI, "x = abd", "\n") is None  # typed off the suggestion
    assert cache.lookup(URI, "x = abc", "\n") is None  # typed all of it
    assert cache.lookup(URI, "x = a", ")\n") is None  # the text after the cursor changed
    assert cache.lookup(URI, "y = a", "\n") is None  # the text before it changed
    assert cache.lookup("file:///b.py", "x = a", "\n") is None
    assert cache.hits == 0


def test_several_suggestions_and_a_long_prefix():
    cache = TypeThroughCache()
    prefix = "#" * (3 * EDGE) + "\nvalue = "
    cache.store(URI, prefix, "", ["foo()", "fob", ""])
    assert cache.lookup(URI, prefix + "fo", "") == ["o()", "b"]
    assert cache.lookup(URI, prefix + "foo", "") == ["()"]


def test_a_short_document_must_match_exactly():
    cache = TypeThroughCache()
    cache.store(URI, "a", "", ["bc"])
    assert cache.lookup(URI, "xab", "") is None  # "a" + "b", but with text before it
    assert cache.lookup(URI, "ab", "") == ["c"]


def test_forgetting_and_the_bound_on_documents():
    cache = TypeThroughCache(max_documents=3)
    for i in range(10):
        cache.store(f"file:///{i}.py", "x", "", ["y"])
    assert len(cache) == 3
    cache.forget("file:///9.py")
    cache.store("file:///8.py", "x", "", [""])  # nothing to show: the entry goes
    assert len(cache) == 1
