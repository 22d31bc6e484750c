"""Tests of eql_es: Elasticsearch's semantics on the `eql` package.

    cd vmtest/conformance && python3 -m unittest -v
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import eql
import eql_es

HERE = os.path.dirname(os.path.abspath(__file__))


def doc(at, category, **fields):
    """A document at second `at` of `category`, with dotted `fields`."""
    d = {"@timestamp": "2026-11-18T11:00:{:02d}.000Z".format(at), "event": {"category": [category]}}
    for dotted, value in fields.items():
        node = d
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return d


SHELL = doc(1, "process", process__name="sh", process__args=["sh", "-i"], user__id="0", container__id="c1")
NSENTER = doc(2, "process", process__name="nsenter", process__args=["nsenter", "--target", "1"], user__id="0")
PASSWD = doc(3, "file", file__path="/etc/passwd", event__action="open", user__id="0", container__id="c1")
NO_USER = doc(4, "file", file__path="/etc/shadow", event__action="open", container__id="c1")


def count(query, documents):
    return len(eql_es.search(query, documents))


class MultiValuedFields(unittest.TestCase):
    def test_a_comparison_holds_when_it_holds_for_any_value(self):
        self.assertEqual(count('process where process.args == "-i"', [SHELL]), 1)
        self.assertEqual(count('process where process.args == "-x"', [SHELL]), 0)
        self.assertEqual(count('process where process.args != "sh"', [SHELL]), 1)
        self.assertEqual(count('process where process.args == "sh" and process.args == "-i"', [SHELL]), 1)

    def test_the_package_alone_compares_the_array_whole(self):
        # Why the wrapper exists: the same query on the package's engine.
        engine = eql.PythonEngine({"flatten": True})
        found = []
        engine.add_output_hook(found.append)
        engine.add_query(eql_es.parse('process where process.args == "-i"'))
        engine.stream_events(eql_es.events([SHELL]))
        self.assertEqual(found, [])

    def test_in_wildcards_and_regexes_apply_to_each_value(self):
        self.assertEqual(count('process where process.args in ("-x", "-i")', [SHELL]), 1)
        self.assertEqual(count('process where process.args like "--tar*"', [NSENTER]), 1)
        self.assertEqual(count('process where process.args : ("--T*", "x")', [NSENTER]), 1)
        self.assertEqual(count('process where process.args regex "--t[a-z]+"', [NSENTER]), 1)
        self.assertEqual(count('process where process.args like "--x*"', [NSENTER]), 0)

    def test_a_wildcards_question_mark_is_one_character(self):
        self.assertEqual(count('any where container.id like "?*"', [SHELL, NSENTER]), 1)
        self.assertEqual(count('any where container.id like "c?"', [SHELL]), 1)
        self.assertEqual(count('any where container.id like "c??"', [SHELL]), 0)

    def test_missing_fields_hold_nothing(self):
        self.assertEqual(count('process where process.args == "-i"', [doc(1, "process")]), 0)


class Sequences(unittest.TestCase):
    def test_sequences_join_on_their_keys_and_leave_out_events_without_them(self):
        query = 'sequence by user.id with maxspan=1m [process where process.name == "sh"] [file where true]'
        self.assertEqual(count(query, [SHELL, PASSWD]), 1)
        # The shadow write has no user.id: Elasticsearch does not join it.
        self.assertEqual(count(query, [SHELL, NO_USER]), 0)
        without_user = dict(SHELL, user={})
        self.assertEqual(count(query, [without_user, NO_USER]), 0)

    def test_maxspan_is_in_the_documents_time(self):
        late = dict(PASSWD, **{"@timestamp": "2026-11-18T11:05:00.000Z"})
        query = 'sequence by user.id with maxspan=1m [process where true] [file where true]'
        self.assertEqual(count(query, [SHELL, late]), 0)
        self.assertEqual(count(query.replace("1m", "10m"), [SHELL, late]), 1)


class Check(unittest.TestCase):
    def run_check(self, queries, documents, activities):
        with tempfile.TemporaryDirectory() as tmp:
            paths = [os.path.join(tmp, n) for n in ("q.toml", "s.ndjson", "a.json")]
            with open(paths[0], "w") as f:
                f.write(queries)
            with open(paths[1], "w") as f:
                f.write("".join(json.dumps(d) + "\n" for d in documents))
            with open(paths[2], "w") as f:
                json.dump(activities, f)
            return subprocess.run(
                [sys.executable, os.path.join(HERE, "check.py")] + paths, capture_output=True, text=True
            )

    def test_a_query_must_find_its_activity_and_no_benign_one(self):
        shell = dict(SHELL, event={"category": ["process"], "id": "1"})
        benign = dict(SHELL, event={"category": ["process"], "id": "2"})
        query = '[[query]]\nname = "q"\nfinds = "shell"\neql = \'process where process.args == "-i"\'\n'
        ok = self.run_check(query, [shell], {"1": "shell"})
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        fires = self.run_check(query, [shell, benign], {"1": "shell", "2": "benign"})
        self.assertEqual(fires.returncode, 1)
        self.assertIn("fires on benign activity", fires.stdout)
        misses = self.run_check(query, [dict(NSENTER, event={"category": ["process"], "id": "3"})], {"3": "x"})
        self.assertEqual(misses.returncode, 1)
        self.assertIn("does not find activity `shell`", misses.stdout)
        bad = self.run_check('[[query]]\nname = "q"\n', [], {})
        self.assertEqual(bad.returncode, 2)
        self.assertIn("has no `finds`", bad.stderr)

    def test_every_shipped_query_parses(self):
        for query in __import__("check").read_queries(os.path.join(HERE, "queries.toml")):
            eql_es.parse(query["eql"])


if __name__ == "__main__":
    unittest.main()
