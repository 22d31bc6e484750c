"""Runs the conformance queries over a session's documents.

    python3 check.py QUERIES.toml SESSION.ndjson ACTIVITIES.json

In: the queries (`queries.toml`: name, the activities it `finds`, the fact
it tests, its EQL), the documents d4c-runtime delivered for a session (one
JSON object a line), and which activity made each document (by
`event.id`; activities named `benign` are the ones no query may find).
Out: one line per query; exit status 0 when every query found each of its
activities and every match holds a document of one of them and none of
benign activity, else 1 (2: the input cannot be read).
"""

import json
import sys
import tomllib

import eql_es

BENIGN = "benign"


def read_queries(path):
    """The queries of `path`; a query without a name, activities or EQL is
    an error naming it."""
    with open(path, "rb") as f:
        table = tomllib.load(f)
    queries = table.get("query", [])
    for n, query in enumerate(queries, 1):
        for key in ("name", "finds", "eql"):
            if key not in query:
                raise ValueError("query {} of `{}` has no `{}`".format(n, path, key))
        if isinstance(query["finds"], str):
            query["finds"] = [query["finds"]]
    return queries


def check(query, documents, activities):
    """What is wrong with `query`'s matches among `documents` (an empty
    list when nothing is)."""
    problems = []
    matches = eql_es.search(query["eql"], documents)
    wanted = set(query["finds"])
    found = set()
    for match in matches:
        made_by = [activities.get((d.get("event") or {}).get("id"), "?") for d in match]
        if BENIGN in made_by:
            problems.append("fires on benign activity: {}".format(_describe(match)))
        elif not wanted.intersection(made_by):
            problems.append("finds activity {} it is not for: {}".format(sorted(set(made_by)), _describe(match)))
        found.update(wanted.intersection(made_by))
    for activity in sorted(wanted - found):
        problems.append("does not find activity `{}`".format(activity))
    return problems


def _describe(match):
    return "; ".join(
        "{} {} {}".format(
            (d.get("event") or {}).get("action"),
            (d.get("process") or {}).get("name"),
            (d.get("file") or {}).get("path", ""),
        ).strip()
        for d in match
    )


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        queries = read_queries(argv[1])
        documents = eql_es.load_ndjson(argv[2])
        with open(argv[3], encoding="utf-8") as f:
            activities = json.load(f)
    except (OSError, ValueError) as error:
        print("conformance: {}".format(error), file=sys.stderr)
        return 2
    failed = 0
    for query in queries:
        problems = check(query, documents, activities)
        print("{} {}".format("ok  " if not problems else "FAIL", query["name"]))
        for problem in problems:
            print("     {}".format(problem))
        failed += bool(problems)
    print("{} of {} queries as expected over {} documents".format(len(queries) - failed, len(queries), len(documents)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
