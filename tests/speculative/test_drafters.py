"""The n-gram drafter: prompt lookup where the longest matches lead, agreeing occurrences vote,
a changed last token is skipped over, and a draft only ever copies tokens of the context. Its
rules run in C (`speculative._ngram`, built by the install) and in Python: both agree."""

import random
import shutil

import pytest
import torch

from speculative import drafters
from speculative.drafters import NextTokens, NgramDrafter, Tree


def reference(context, k, max_ngram=8, min_ngram=1, candidates=32):
    """The documented rule, in plain Python."""
    if k <= 0:
        return []
    for skip in (0, 1):
        end = len(context) - 1 - skip
        if end < 1:
            continue
        found = []
        for at in range(end - 1, -1, -1):
            length = 0
            while (length < max_ngram and length <= at
                   and context[at - length] == context[end - length]):
                length += 1
            if length >= 1 and length >= min_ngram:
                found.append([at + 1 + skip, 8 ** length])
            if len(found) == candidates:
                break
        if found:
            draft = []
            while found and len(draft) < k:
                tally = {}
                for at, weight in found:
                    tally[context[at]] = tally.get(context[at], 0) + weight
                token = max(tally, key=tally.get)
                draft.append(token)
                found = [[at + 1, w] for at, w in found
                         if context[at] == token and at + 1 < len(context)]
            return draft
    return []


@pytest.mark.parametrize("native", [False, None])
def test_search_matches_the_plain_python_rule(native):
    # ids past what the C index takes (2**24 and more) make the drafter index in Python
    rng = random.Random(0)
    for trial in range(600):
        alphabet = [1, 2, 3, 256, 65536 + 1] + ([2**31, 2**70] if trial % 3 == 0 else [])
        context = [rng.choice(alphabet) for _ in range(rng.randint(0, 60))]
        k = rng.randint(0, 16)
        options = rng.choice([{}, {"max_ngram": 2}, {"min_ngram": 2}, {"candidates": 3}])
        assert (NgramDrafter(native=native, **options).propose(context, k).tokens
                == reference(context, k, **options)), (context, k, options)


def test_the_c_module_is_built_where_a_compiler_is():
    if shutil.which("cc") or shutil.which("gcc"):
        assert drafters.Index is not None, "speculative/_ngram.c is not built: make setup"
        assert NgramDrafter().native


@pytest.mark.skipif(drafters.Index is None, reason="speculative._ngram is not built")
def test_c_and_python_give_the_same_lookups_and_trees():
    rng = random.Random(1)
    table = NextTokens.count([[rng.randrange(6) for _ in range(40)] for _ in range(20)],
                             min_count=2)
    for trial in range(1500):
        vocab = rng.choice([2, 3, 6, 40])
        context = [rng.randrange(vocab) for _ in range(rng.randrange(0, 80))]
        options = dict(max_ngram=rng.choice([1, 2, 8]), min_ngram=rng.choice([1, 2, 3]),
                       candidates=rng.choice([1, 4, 32]), weak_free_k=rng.choice([None, 2, 7]),
                       tree_candidates=rng.choice([0, 2, 5]), candidate_length=rng.choice([1, 8]),
                       next_tokens=rng.choice([None, table]), guesses=rng.choice([1, 4]))
        c, python = NgramDrafter(native=True, **options), NgramDrafter(native=False, **options)
        k, budget, weak = rng.choice([0, 1, 4, 15, 100]), rng.choice([1, 5, 31, 63]), \
            rng.choice([None, 3])
        for grown in (False, True):  # a fresh index, then one extended in place
            if grown:
                context += [rng.randrange(vocab) for _ in range(rng.randrange(1, 4))]
            a, b = c.propose_tree(context, k, budget), python.propose_tree(context, k, budget)
            assert (a.tokens, a.edges, a.depths, a.bits) == (b.tokens, b.edges, b.depths,
                                                             b.bits), (context, options, k)
            assert c.lookup(context, k, weak) == python.lookup(context, k, weak)


@pytest.mark.skipif(drafters.Index is None, reason="speculative._ngram is not built")
def test_c_and_python_agree_at_the_c_indexs_largest_weights():
    # 1,024 candidates matching 17 tokens each: weights summed near the int64 limit
    context = [0, 1] * 1100 + [2, 0, 1, 0, 1, 3] * 3 + [0, 1] * 20
    c, python = (NgramDrafter(max_ngram=17, candidates=1024, native=native)
                 for native in (True, False))
    assert c.native and c.lookup(context, 40) == python.lookup(context, 40)


@pytest.mark.skipif(drafters.Index is None, reason="speculative._ngram is not built")
def test_the_c_index_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        drafters.Index([1, -2]).extend()
    with pytest.raises(ValueError, match="not initialised"):
        drafters.Index.__new__(drafters.Index).extend()
    index = drafters.Index([1, 2, 1])
    index.extend()
    with pytest.raises(ValueError, match="at most 63"):
        index.tree(4, 64, -1, 8, 1, 32, 2, 8, [])
    with pytest.raises(ValueError, match="max_ngram"):
        index.lookup(4, -1, 18, 1, 32)
    with pytest.raises(ValueError, match="C n-gram index"):
        NgramDrafter(native=True, max_ngram=30)
    assert not NgramDrafter(candidates=0).native  # settings past its limits: Python's rules


def test_the_longest_match_leads():
    # 7 follows the latest "3"; 8 follows an older "1 2 3", the context's own tail
    context = [1, 2, 3, 8, 8, 5, 3, 7, 7, 1, 2, 3]
    assert NgramDrafter().propose(context, 2).tokens == [8, 8]
    # with matches capped at one token, the latest occurrence wins the tie
    assert NgramDrafter(max_ngram=1).propose(context, 2).tokens == [7, 7]


def test_agreeing_occurrences_outvote_the_latest():
    context = [9, 5, 1, 9, 5, 1, 9, 6, 2, 9]  # after 9: 5 twice, then 6 (the latest)
    assert NgramDrafter(max_ngram=1).propose(context, 2).tokens == [5, 1]
    # each following step keeps only the occurrences that agree so far
    context = [4, 1, 2, 4, 1, 3, 4, 1, 3, 4, 5, 6, 4]
    assert NgramDrafter(max_ngram=1).propose(context, 3).tokens == [1, 3, 4]


def test_a_changed_last_token_is_skipped_over():
    # 99 never occurred: it is taken for the changed 3 of "1 2 3 4 5"
    assert NgramDrafter().propose([1, 2, 3, 4, 5, 0, 1, 2, 99], 3).tokens == [4, 5, 0]
    assert NgramDrafter().propose([1, 2, 3], 4).tokens == []  # nothing repeats at all


def test_drafts_copy_only_tokens_of_the_context():
    # the match's continuation runs into the context's end: the draft stops there
    assert NgramDrafter().propose([1, 2, 3, 1, 2], 15).tokens == [3, 1, 2]
    rng = random.Random(1)
    for _ in range(200):
        context = [rng.randrange(6) for _ in range(rng.randint(0, 80))]
        k = rng.randint(1, 20)
        draft = NgramDrafter().propose(context, k).tokens
        assert len(draft) <= k and set(draft) <= set(context)


def test_free_k_bounds_the_draft_instead_of_k():
    context = list(range(30)) + [0, 1]  # "0 1" matches two tokens
    drafter = NgramDrafter()
    assert drafter.propose(context, 2).tokens == [2, 3]
    assert drafter.propose(context, 2, free_k=15).tokens == list(range(2, 17))
    assert drafter.propose(context, 2, free_k=0).tokens == []


def test_a_free_draft_from_a_one_token_match_stops_at_weak_free_k():
    context = list(range(30)) + [0]  # "0" alone matches: 29 is not what preceded it
    assert NgramDrafter().propose(context, 2, free_k=15).tokens == list(range(1, 8))
    assert NgramDrafter(weak_free_k=None).propose(context, 2, free_k=15).tokens == \
        list(range(1, 16))
    assert NgramDrafter().propose(context, 12).tokens == list(range(1, 13))  # k: as asked


def test_a_context_grown_in_place_drafts_as_a_fresh_one():
    # a decoder passes one list and appends what it accepts: the index extends, never goes stale
    rng = random.Random(2)
    drafter = NgramDrafter()
    context = [rng.randrange(5) for _ in range(30)]
    drafter.prepare(context)
    for _ in range(60):
        k = rng.randint(1, 12)
        assert drafter.propose(context, k).tokens == reference(list(context), k)
        context.extend(rng.randrange(5) for _ in range(rng.randint(1, 3)))


def test_another_or_shortened_context_is_indexed_afresh():
    drafter = NgramDrafter()
    first = [1, 2, 3, 9, 1, 2]
    assert drafter.propose(first, 3).tokens == [3, 9, 1]
    del first[2:]  # the same list, shorter (rolled back): indexed again, not read stale
    first.extend([4, 1, 2])
    assert drafter.propose(first, 3).tokens == [4, 1, 2]
    other = [1, 2, 5, 9, 1, 2]  # a different list: its own index
    assert drafter.propose(other, 3).tokens == [5, 9, 1]


def test_threads_keep_their_own_index():
    import threading

    drafter = NgramDrafter()
    contexts = [[t, 7, t + 1, 8, t, 7] for t in range(10, 60, 10)]
    drafts = {}

    def draft(context):
        for _ in range(50):
            drafts.setdefault(context[0], set()).add(tuple(drafter.propose(context, 2).tokens))

    threads = [threading.Thread(target=draft, args=(c,)) for c in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert drafts == {c[0]: {(c[0] + 1, 8)} for c in contexts}


# --- trees of drafts ------------------------------------------------------------------------


def test_a_tree_shares_prefixes_keeps_its_budget_and_gives_each_node_its_ancestors():
    tree = Tree()
    tree.add([5, 6, 7], budget=6)
    tree.add([5, 6, 9, 10], budget=6)  # shares 5, 6
    tree.add([8, 1, 2], budget=6)  # one node left: 8
    assert tree.tokens == [5, 6, 7, 9, 10, 8]
    assert tree.depths.tolist() == [0, 1, 2, 3, 3, 4, 1]
    parents = {1: 0, 2: 1, 3: 2, 4: 2, 5: 4, 6: 0}
    assert {child: key & 63 for key, child in tree.edges.items()} == parents
    for node, parent in parents.items():
        assert tree.bits[node] == tree.bits[parent] | 1 << node
    assert tree.bits[0] == 1
    # the target's argmax at each node (root first): 5 after the root, 6 after 5, then 9, then 3
    assert tree.walk([5, 6, 9, 0, 3, 0, 0]) == [1, 2, 4]
    assert tree.walk([8, 0, 0, 0, 0, 0, 0]) == [6]
    assert tree.walk([4, 0, 0, 0, 0, 0, 0]) == []
    # of an accepted path, the nodes in a row after the root (the first branch's)
    assert [Tree.in_row(p) for p in ([1, 2, 4], [1, 2, 3], [6], [])] == [2, 3, 0, 0]
    # verified after 2 re-fed tokens in a row: every node one step deeper by 2, seeing them
    depths, bits = tree.inputs(2)
    assert depths.tolist() == [0, 1, 2, 3, 4, 5, 5, 6, 3]
    assert bits.tolist() == [1, 3] + [b << 2 | 3 for b in tree.bits]
    assert tree.inputs(0) == (tree.depths, tree.bits)


def table():
    """After (1, 2): 3 then 4; after 2 alone: 4 then 3; after (2, 3): 9, after (3, 9): 10."""
    return NextTokens.count([[1, 2, 3, 9, 10]] * 3 + [[1, 2, 4]] * 2 + [[7, 2, 4]] * 2,
                            top=2, length=3, min_count=1)


def test_next_tokens_guess_after_pairs_then_single_tokens_and_survive_a_file(tmp_path):
    t = table()
    assert t.guesses(1, 2) == [[3, 9, 10, -1], [4, -1, -1, -1]]  # 3 9 10, then nothing follows
    assert t.guesses(7, 2) == [[4, -1, -1, -1], [-1] * 4]  # one guess only
    assert t.guesses(99, 2) == [[4, -1, -1, -1], [3, 9, 10, -1]]  # an unseen pair: 2 alone
    assert t.guesses(99, 98) == []
    t.save(tmp_path / "t.safetensors")
    loaded = NextTokens.load(tmp_path / "t.safetensors")
    for pair in ((1, 2), (7, 2), (99, 2), (2, 3), (99, 98)):
        assert loaded.guesses(*pair) == t.guesses(*pair)
    rare = NextTokens.count([[1, 2, 3, 9, 10]] * 3 + [[1, 2, 4]] * 2, top=2, min_count=4)
    assert rare.guesses(1, 2)[0][:2] == [3, -1]  # (2, 3) seen 3 times: left out, and 3 alone too
    assert rare.guesses(3, 9) == []


def test_a_file_that_is_no_next_token_table_is_refused(tmp_path):
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a table")
    for name in ("other", "junk", "missing"):
        with pytest.raises(ValueError, match="next-token table"):
            NextTokens.load(tmp_path / f"{name}.safetensors")


def test_a_tree_starts_with_the_votes_draft_then_other_candidates_then_the_tables_guesses():
    context = [1, 2, 3, 4, 1, 2, 5, 6, 1, 2]  # after 1, 2: 3 4 (older) or 5 6 (latest)
    drafter = NgramDrafter(next_tokens=table(), guesses=2)
    vote = drafter.propose(context, 1, free_k=4).tokens
    tree = drafter.propose_tree(context, 4, budget=31)
    assert tree.tokens[:len(vote)] == vote and list(tree.depths[1:len(vote) + 1]) == list(
        range(1, len(vote) + 1))  # the first branch in a row
    branches = {tuple(tree.tokens[i - 1] for i in path) for path in _leaf_paths(tree)}
    assert vote and tuple(vote) in branches
    assert (3, 4, 1, 2) in branches or (3, 4, 1) in branches  # the other candidate
    assert (3, 9, 10) in branches and (4,) in branches  # the table's guesses after (1, 2)
    assert len(drafter.propose_tree(context, 4, budget=3).tokens) == 3
    assert NgramDrafter().propose_tree(context, 0, budget=31).tokens == []


def _leaf_paths(tree):
    parents = {child: key & 63 for key, child in tree.edges.items()}  # key: token << 6 | parent
    for leaf in set(range(1, len(tree.tokens) + 1)) - set(parents.values()):
        path = [leaf]
        while parents[path[-1]]:
            path.append(parents[path[-1]])
        yield path[::-1]
