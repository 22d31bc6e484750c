"""EQL over ECS documents with Elasticsearch's semantics, on the `eql` package.

In: EQL queries as Elastic's rules write them (Elasticsearch syntax:
`:`, `like`, `regex`, `in`, `sequence by ... with maxspan=...`) and ECS
documents (JSON objects, as d4c-runtime delivers them). Out: the documents
each query finds (a sequence: the documents of each match).

The `eql` package (PyPI) parses and runs EQL in Python, but compares an
array as one value: `process.args == "-i"` does not hold for
`["sh", "-i"]`. Elasticsearch holds a comparison on a multi-valued field
when it holds for any of its values. `Engine` changes the package's
engine so that comparisons, `in`, the wildcard and regex functions (`:`,
`like`, `regex`) and string functions apply to each value of an array
field and hold when any does, and a wildcard's `?` is one character. A sequence leaves out events whose join keys
are missing, as Elasticsearch does (the package would join them on null).

Invariants: nothing here knows d4c's fields; an event's category is its
`event.category` (each of them, when there are several), its time its
`@timestamp`, as Elasticsearch's EQL reads them.
"""

import datetime
import json
import re

import eql
from eql import ast
from eql.engine import PythonEngine
from eql.events import Event
from eql.parser import elasticsearch_syntax, ignore_missing_functions, parse_query

# The functions whose first argument is a field that may hold several
# values: each value is tried.
ANY_VALUE_FUNCTIONS = {
    "wildcard",
    "match",
    "matchLite",
    "startsWith",
    "endsWith",
    "stringContains",
    "length",
}


def _values(value):
    """The values of a field as Elasticsearch sees them: an array's
    elements, else the value itself."""
    if isinstance(value, list):
        return value
    return [value]


def _any(test, left, right):
    """Whether `test` holds for any value of `left` with any of `right`;
    None (missing) when no pair said anything."""
    return _any_of([test(a, b) for a in _values(left) for b in _values(right)])


class Engine(PythonEngine):
    """The package's engine with Elasticsearch's multi-valued fields."""

    def _convert_comparison(self, node):
        get_left = self.convert(node.left)
        get_right = self.convert(node.right)
        # The package's comparison of two single values, as it picks it.
        if isinstance(node.left, _STRINGISH) and isinstance(node.right, _STRINGISH):
            compare = self.check_types(self.lowercase(node.function, always=False))
        else:
            compare = self.check_types(node.function)

        def callback(scope):
            return _any(compare, get_left(scope), get_right(scope))

        return callback

    def _convert_in_set(self, node):
        if not all(isinstance(item, ast.Literal) for item in node.container):
            return self.convert(node.synonym)
        one = PythonEngine._convert_in_set(self, ast.InSet(ast.Field(_VALUE), node.container))
        get_value = self.convert(node.expression)

        def callback(scope):
            value = get_value(scope)
            if value is None:
                return None
            return _any_of([one(_ValueScope(v, scope)) for v in _values(value)])

        return callback

    def _convert_function_call(self, node):
        if node.name == "wildcard" and all(isinstance(a, ast.String) for a in node.arguments[1:]):
            return self._wildcard(node)
        if node.name not in ANY_VALUE_FUNCTIONS or not node.arguments:
            return PythonEngine._convert_function_call(self, node)
        arguments = [ast.Field(_VALUE)] + list(node.arguments[1:])
        one = PythonEngine._convert_function_call(self, ast.FunctionCall(node.name, arguments, node.as_method))
        get_value = self.convert(node.arguments[0])

        def callback(scope):
            value = get_value(scope)
            if not isinstance(value, list):
                return one(_ValueScope(value, scope))
            return _any_of([one(_ValueScope(v, scope)) for v in value])

        return callback


    def _wildcard(self, node):
        """`:` and `like` as Elasticsearch reads the pattern: `*` any run of
        characters, `?` one character (the package takes `?` literally).
        Case is folded, as the package folds it for every comparison."""
        pattern = re.compile(
            "|".join(
                "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in a.value) + "$"
                for a in node.arguments[1:]
            ),
            re.IGNORECASE | re.DOTALL,
        )
        get_value = self.convert(node.arguments[0])

        def callback(scope):
            value = get_value(scope)
            if value is None:
                return None
            return _any_of([pattern.match(v) is not None if isinstance(v, str) else None for v in _values(value)])

        return callback


# Nodes whose values may be strings: the package folds case between them.
_STRINGISH = (ast.FunctionCall, ast.String, ast.Field)

# The field a single value is given to the package's code under.
_VALUE = "__value__"


def _any_of(results):
    """True when any result holds; False when some said no and none held;
    None (missing) when none said anything."""
    if any(results):
        return True
    return False if any(r is not None for r in results) else None


class _ValueScope(object):
    """A scope whose event holds one value of a multi-valued field, given
    to the package's code for one value; everything else is the outer
    scope's."""

    def __init__(self, value, outer):
        self.event = Event("any", 0, {_VALUE: value})
        self.outer = outer

    def __getattr__(self, name):
        return getattr(self.outer, name)


def _require_join_keys(query):
    """`query` with each sequence term made to require its join keys, as
    Elasticsearch leaves out events whose keys are missing."""

    def require(node):
        if isinstance(node, ast.SubqueryBy) and node.join_values:
            present = [ast.IsNotNull(key) for key in node.join_values]
            inner = node.query
            inner.query = ast.And([inner.query] + present)
        for _, value in node.iter_slots():
            for child in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(child, ast.BaseNode):
                    require(child)
        return node

    return require(query)


def parse(text):
    """An EQL query in Elasticsearch's syntax, parsed (functions the
    package does not know are errors)."""
    with elasticsearch_syntax, ignore_missing_functions:
        query = parse_query(text)
    return _require_join_keys(query)


def _epoch_ms(timestamp):
    stamp = datetime.datetime.strptime(timestamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(stamp.timestamp() * 1000)


def events(documents):
    """The package's events of ECS documents: one per `event.category`
    value, at its `@timestamp` (in milliseconds, the unit of `maxspan`),
    in time order."""
    out = []
    for document in documents:
        categories = _values((document.get("event") or {}).get("category")) or ["any"]
        for category in categories:
            out.append(Event(category, _epoch_ms(document["@timestamp"]), document))
    out.sort(key=lambda e: e.time)
    return out


def search(text, documents):
    """The documents `text` finds among `documents`: a list per match (one
    document for an event query, one per term for a sequence)."""
    query = parse(text)
    # Times are in milliseconds: a thousand ticks a second (`maxspan`).
    engine = Engine({"flatten": False, "time_unit": 1000})
    found = []
    engine.add_output_hook(lambda result: found.append([e.data for e in result.events]))
    engine.add_query(query)
    engine.stream_events(events(documents))
    engine.finalize()
    return found


def load_ndjson(path):
    """Documents, one JSON object a line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["Engine", "events", "load_ndjson", "parse", "search", "eql"]
