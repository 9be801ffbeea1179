/* The n-gram drafter's per-round work in C: the index of a growing context, the vote
 * (`lookup`) and the tree of drafts (`tree`). It runs between two verify steps of a greedy
 * decoder, on the host's critical path: with the rules in Python a tree round's host time was
 * 64 us on an H200's host, a quarter of the GPU's step; 28 us with this module (BENCHMARKS.md,
 * thirteenth session). `speculative/drafters.py` holds the same rules in Python (`_Index`),
 * used where this module is not built; tests check that both agree. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#define MAX_NODES 63   /* a tree's nodes, the root excluded: its bits fit an int64 */
#define MAX_NGRAM 17   /* weights 8 ** length, summed over MAX_CANDIDATES, fit an int64 */
#define MAX_CANDIDATES 1024  /* arrays of candidates live on the stack */
#define MAX_TOKEN (1 << 24)  /* `latest` has a slot per id: 64 MiB at most */

typedef struct {
    PyObject_HEAD
    PyObject *context;   /* the list indexed, grown in place by its owner */
    Py_ssize_t length;   /* how many of its tokens are indexed */
    Py_ssize_t capacity;
    int32_t *tokens;     /* context[:length] */
    int32_t *previous;   /* the position of the same token before each position, or -1 */
    int32_t *latest;     /* per token id: its latest position, or -1 */
    Py_ssize_t vocab;    /* the size of `latest` */
} Index;

static void Index_dealloc(Index *self) {
    Py_XDECREF(self->context);
    PyMem_Free(self->tokens);
    PyMem_Free(self->previous);
    PyMem_Free(self->latest);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Index_init(Index *self, PyObject *args, PyObject *Py_UNUSED(kwds)) {
    PyObject *context;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &context))
        return -1;
    Py_INCREF(context);
    Py_XSETREF(self->context, context);
    self->length = 0;
    for (Py_ssize_t t = 0; t < self->vocab; t++)
        self->latest[t] = -1;
    return 0;
}

static int grow(int32_t **array, Py_ssize_t size) {
    int32_t *grown = PyMem_Realloc(*array, (size_t)size * sizeof(int32_t));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *array = grown;
    return 0;
}

/* Index the context's tokens added since the last call. */
static PyObject *Index_extend(Index *self, PyObject *Py_UNUSED(unused)) {
    if (self->context == NULL) {
        PyErr_SetString(PyExc_ValueError, "Index(context) was not initialised");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(self->context);
    if (n < self->length) {
        PyErr_SetString(PyExc_ValueError, "the context shrank since it was indexed");
        return NULL;
    }
    if (n > self->capacity) {
        Py_ssize_t capacity = n > 2 * self->capacity ? n : 2 * self->capacity;
        if (grow(&self->tokens, capacity) || grow(&self->previous, capacity))
            return NULL;
        self->capacity = capacity;
    }
    for (Py_ssize_t at = self->length; at < n; at++) {
        long token = PyLong_AsLong(PyList_GET_ITEM(self->context, at));
        if (token == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear();
            token = -1;
        }
        if (token < 0 || token >= MAX_TOKEN) {
            PyErr_Format(PyExc_ValueError, "token %ld at %zd is not an id in 0..2**24", token, at);
            return NULL;
        }
        if (token >= self->vocab) {
            Py_ssize_t vocab = token + 1 > 2 * self->vocab ? token + 1 : 2 * self->vocab;
            if (vocab > MAX_TOKEN)
                vocab = MAX_TOKEN;
            if (grow(&self->latest, vocab))
                return NULL;
            for (Py_ssize_t t = self->vocab; t < vocab; t++)
                self->latest[t] = -1;
            self->vocab = vocab;
        }
        self->tokens[at] = (int32_t)token;
        self->previous[at] = self->latest[token];
        self->latest[token] = (int32_t)at;
        self->length = at + 1;
    }
    Py_RETURN_NONE;
}

typedef struct {
    int max_ngram, min_ngram, candidates;
} Rules;

/* The candidates for context[-1 - skip] (`_Index._matches`): where each continuation
 * starts and its weight, latest first. Returns how many. */
static Py_ssize_t matches(const Index *self, const Rules *rules, int skip, int64_t *starts,
                          int64_t *weights) {
    const int32_t *ctx = self->tokens;
    Py_ssize_t end = self->length - 1 - skip, found = 0;
    if (end < 1)
        return 0;
    for (Py_ssize_t at = self->latest[ctx[end]]; at >= 0; at = self->previous[at]) {
        if (at >= end)
            continue;
        int length = 1;
        while (length < rules->max_ngram && length <= at && ctx[at - length] == ctx[end - length])
            length++;
        if (length >= rules->min_ngram) {
            starts[found] = at + 1 + skip;
            weights[found] = (int64_t)1 << (3 * length);
            found++;
        }
        if (found == rules->candidates)
            break;
    }
    return found;
}

/* The vote's draft of up to k tokens (`drafters.vote`); starts and weights are used up. */
static Py_ssize_t vote(const Index *self, int64_t *starts, int64_t *weights, Py_ssize_t n,
                       Py_ssize_t k, int32_t *draft) {
    const int32_t *ctx = self->tokens;
    Py_ssize_t drafted = 0, length = self->length;
    int32_t tokens[n > 0 ? n : 1];
    int64_t tally[n > 0 ? n : 1];
    while (n > 0 && drafted < k) {
        if (n == 1) {
            for (Py_ssize_t at = starts[0]; at < length && drafted < k; at++)
                draft[drafted++] = ctx[at];
            return drafted;
        }
        Py_ssize_t distinct = 0, best = 0;
        for (Py_ssize_t i = 0; i < n; i++) {  /* the tokens in order of first appearance */
            int32_t token = ctx[starts[i]];
            Py_ssize_t j = 0;
            while (j < distinct && tokens[j] != token)
                j++;
            if (j == distinct) {
                tokens[distinct] = token;
                tally[distinct++] = 0;
            }
            tally[j] += weights[i];
        }
        for (Py_ssize_t j = 1; j < distinct; j++)  /* the first on ties: the latest */
            if (tally[j] > tally[best])
                best = j;
        int32_t token = tokens[best];
        draft[drafted++] = token;
        Py_ssize_t kept = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (ctx[starts[i]] == token && starts[i] + 1 < length) {
                starts[kept] = starts[i] + 1;
                weights[kept++] = weights[i];
            }
        n = kept;
    }
    return drafted;
}

typedef struct {
    Py_ssize_t k, weak_k;
    Py_ssize_t found;       /* candidates */
    int64_t *starts, *weights;
    Py_ssize_t drafted;
    int32_t *draft;
} Lookup;

/* `NgramDrafter.lookup`: the candidates (kept in order) and the vote's draft. */
static void lookup(const Index *self, const Rules *rules, Lookup *out) {
    out->found = out->drafted = 0;
    for (int skip = 0; skip <= 1; skip++) {
        Py_ssize_t found = matches(self, rules, skip, out->starts, out->weights);
        if (found == 0)
            continue;
        Py_ssize_t k = out->k;
        int64_t heaviest = 0;
        for (Py_ssize_t i = 0; i < found; i++)
            if (out->weights[i] > heaviest)
                heaviest = out->weights[i];
        if (out->weak_k >= 0 && heaviest < 64 && out->weak_k < k)  /* 8 ** 2 */
            k = out->weak_k;
        int64_t starts[found], weights[found];
        memcpy(starts, out->starts, sizeof starts);
        memcpy(weights, out->weights, sizeof weights);
        out->found = found;
        out->drafted = vote(self, starts, weights, found, k, out->draft);
        return;
    }
}

static int parse_rules(Rules *rules, int max_ngram, int min_ngram, int candidates) {
    if (max_ngram < 1 || max_ngram > MAX_NGRAM || candidates < 1 || candidates > MAX_CANDIDATES) {
        PyErr_Format(PyExc_ValueError, "max_ngram must be 1..%d and candidates 1..%d",
                     MAX_NGRAM, MAX_CANDIDATES);
        return -1;
    }
    rules->max_ngram = max_ngram;
    rules->min_ngram = min_ngram;
    rules->candidates = candidates;
    return 0;
}

static PyObject *array_type;  /* array.array */

/* An array('q') of the values: what a verify step's input buffer is made of. */
static PyObject *int64_array(const int64_t *values, Py_ssize_t n) {
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)values, n * (Py_ssize_t)sizeof(int64_t));
    if (bytes == NULL)
        return NULL;
    PyObject *array = PyObject_CallFunction(array_type, "sO", "q", bytes);
    Py_DECREF(bytes);
    return array;
}

static PyObject *int32_list(const int32_t *values, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyLong_FromLong(values[i]);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

/* lookup(k, weak_k, max_ngram, min_ngram, candidates) -> ({start: weight}, draft);
 * weak_k < 0: none. */
static PyObject *Index_lookup(Index *self, PyObject *args) {
    Py_ssize_t k, weak_k;
    int max_ngram, min_ngram, candidates;
    Rules rules;
    if (!PyArg_ParseTuple(args, "nniii", &k, &weak_k, &max_ngram, &min_ngram, &candidates)
        || parse_rules(&rules, max_ngram, min_ngram, candidates))
        return NULL;
    if (k < 0)
        k = 0;
    Py_ssize_t room = k < self->length ? k : self->length;
    int64_t starts[candidates], weights[candidates];
    int32_t *draft = PyMem_Malloc((size_t)(room + 1) * sizeof(int32_t));
    if (draft == NULL)
        return PyErr_NoMemory();
    Lookup out = {k, weak_k, 0, starts, weights, 0, draft};
    lookup(self, &rules, &out);
    PyObject *found = PyDict_New(), *drafted = int32_list(draft, out.drafted);
    PyMem_Free(draft);
    for (Py_ssize_t i = 0; found != NULL && i < out.found; i++) {
        PyObject *start = PyLong_FromLongLong(starts[i]);
        PyObject *weight = PyLong_FromLongLong(weights[i]);
        if (start == NULL || weight == NULL || PyDict_SetItem(found, start, weight) < 0)
            Py_CLEAR(found);
        Py_XDECREF(start);
        Py_XDECREF(weight);
    }
    if (found == NULL || drafted == NULL) {
        Py_XDECREF(found);
        Py_XDECREF(drafted);
        return NULL;
    }
    return Py_BuildValue("(NN)", found, drafted);
}

typedef struct {
    Py_ssize_t count, budget;  /* nodes, the root excluded */
    int32_t tokens[MAX_NODES + 1];
    int parents[MAX_NODES + 1], depths[MAX_NODES + 1];
    int64_t bits[MAX_NODES + 1];
} Tree;

/* `Tree.add`: a branch from the root, its new tokens while there is room; stops at a
 * negative token (a table guess's padding). */
static void add(Tree *tree, const int32_t *path, Py_ssize_t n) {
    int node = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t token = path[i];
        if (token < 0)
            return;
        int child = 0;
        for (int j = 1; j <= tree->count; j++)
            if (tree->parents[j] == node && tree->tokens[j] == token) {
                child = j;
                break;
            }
        if (child == 0) {
            if (tree->count >= tree->budget)
                return;
            child = (int)++tree->count;
            tree->tokens[child] = token;
            tree->parents[child] = node;
            tree->depths[child] = tree->depths[node] + 1;
            tree->bits[child] = tree->bits[node] | (int64_t)1 << child;
        }
        node = child;
    }
}

/* Add a table guess (a list of ints), its first k tokens. */
static int add_guess(Tree *tree, PyObject *guess, Py_ssize_t k) {
    if (!PyList_Check(guess)) {
        PyErr_SetString(PyExc_TypeError, "a guess must be a list of token ids");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(guess);
    if (n > k)
        n = k;
    if (n > MAX_NODES)
        n = MAX_NODES;
    int32_t path[MAX_NODES];
    for (Py_ssize_t i = 0; i < n; i++) {
        long token = PyLong_AsLong(PyList_GET_ITEM(guess, i));
        if (token == -1 && PyErr_Occurred())
            return -1;
        path[i] = token < 0 ? -1 : token > INT32_MAX ? INT32_MAX : (int32_t)token;
    }
    add(tree, path, n);
    return 0;
}

/* tree(k, budget, weak_k, max_ngram, min_ngram, candidates, tree_candidates,
 *      candidate_length, guesses) -> (tokens, edges, depths, bits): `NgramDrafter.propose_tree`
 * over this index's context, as the fields of a `Tree`. */
static PyObject *Index_tree(Index *self, PyObject *args) {
    Py_ssize_t k, budget, weak_k, tree_candidates, candidate_length;
    int max_ngram, min_ngram, candidates;
    PyObject *guesses;
    Rules rules;
    if (!PyArg_ParseTuple(args, "nnniiinnO!", &k, &budget, &weak_k, &max_ngram, &min_ngram,
                          &candidates, &tree_candidates, &candidate_length, &PyList_Type,
                          &guesses)
        || parse_rules(&rules, max_ngram, min_ngram, candidates))
        return NULL;
    if (budget > MAX_NODES) {
        PyErr_Format(PyExc_ValueError, "a tree holds at most %d nodes", MAX_NODES);
        return NULL;
    }
    Tree tree;
    tree.count = 0;
    tree.budget = budget;
    tree.depths[0] = 0;
    tree.bits[0] = 1;
    tree.parents[0] = -1;
    if (k > 0 && self->length >= 2) {
        /* the vote's first tokens are the same whatever its length: the tree holds no more */
        Py_ssize_t room = k < MAX_NODES ? k : MAX_NODES;
        int64_t starts[candidates], weights[candidates];
        int32_t draft[MAX_NODES];
        Lookup out = {room, weak_k, 0, starts, weights, 0, draft};
        lookup(self, &rules, &out);
        add(&tree, draft, out.drafted);
        Py_ssize_t length = k < candidate_length ? k : candidate_length;
        for (Py_ssize_t picked = 0; picked < tree_candidates && picked < out.found; picked++) {
            Py_ssize_t best = -1;  /* the heaviest left, the latest on ties (a stable sort) */
            for (Py_ssize_t i = 0; i < out.found; i++)
                if (weights[i] >= 0 && (best < 0 || weights[i] > weights[best]))
                    best = i;
            Py_ssize_t from = starts[best], to = from + length;
            weights[best] = -1;
            add(&tree, self->tokens + from, (to < self->length ? to : self->length) - from);
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(guesses); i++)
            if (add_guess(&tree, PyList_GET_ITEM(guesses, i), k))
                return NULL;
    }
    Py_ssize_t n = tree.count;
    int64_t depths_out[MAX_NODES + 1];
    for (Py_ssize_t i = 0; i <= n; i++)
        depths_out[i] = tree.depths[i];
    PyObject *tokens = int32_list(tree.tokens + 1, n), *edges = PyDict_New();
    PyObject *depths = int64_array(depths_out, n + 1), *bits = int64_array(tree.bits, n + 1);
    if (tokens == NULL || edges == NULL || depths == NULL || bits == NULL)
        goto fail;
    for (Py_ssize_t i = 1; i <= n; i++) {
        /* the key `Tree` uses: token << 6 | parent */
        PyObject *key = PyLong_FromLongLong((int64_t)tree.tokens[i] << 6 | tree.parents[i]);
        PyObject *child = PyLong_FromSsize_t(i);
        int failed = key == NULL || child == NULL || PyDict_SetItem(edges, key, child) < 0;
        Py_XDECREF(key);
        Py_XDECREF(child);
        if (failed)
            goto fail;
    }
    return Py_BuildValue("(NNNN)", tokens, edges, depths, bits);
fail:
    Py_XDECREF(tokens);
    Py_XDECREF(edges);
    Py_XDECREF(depths);
    Py_XDECREF(bits);
    return NULL;
}

static PyMethodDef Index_methods[] = {
    {"extend", (PyCFunction)Index_extend, METH_NOARGS,
     "Index the tokens the context gained since the last call."},
    {"lookup", (PyCFunction)Index_lookup, METH_VARARGS,
     "lookup(k, weak_k, max_ngram, min_ngram, candidates) -> ({start: weight}, draft)"},
    {"tree", (PyCFunction)Index_tree, METH_VARARGS,
     "tree(k, budget, weak_k, max_ngram, min_ngram, candidates, tree_candidates, "
     "candidate_length, guesses) -> (tokens, edges, depths, bits)"},
    {NULL}
};

static PyMemberDef Index_members[] = {
    {"context", T_OBJECT, offsetof(Index, context), READONLY, "the list indexed"},
    {"length", T_PYSSIZET, offsetof(Index, length), READONLY, "how many tokens are indexed"},
    {NULL}
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "speculative._ngram.Index",
    .tp_doc = "Index(context): where each token of a growing list of token ids occurs.",
    .tp_basicsize = sizeof(Index),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
    .tp_members = Index_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_ngram",
    .m_doc = "The n-gram drafter's index, vote and tree, in C (see speculative.drafters).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__ngram(void) {
    PyObject *array_module = PyImport_ImportModule("array");
    if (array_module == NULL)
        return NULL;
    array_type = PyObject_GetAttrString(array_module, "array");
    Py_DECREF(array_module);
    if (array_type == NULL || PyType_Ready(&IndexType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* the limits, which `NgramDrafter` checks before it chooses this module */
    if (PyModule_AddIntConstant(m, "MAX_NGRAM", MAX_NGRAM) < 0
        || PyModule_AddIntConstant(m, "MAX_CANDIDATES", MAX_CANDIDATES) < 0
        || PyModule_AddIntConstant(m, "MAX_NODES", MAX_NODES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(m, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
