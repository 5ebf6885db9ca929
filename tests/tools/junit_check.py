#!/usr/bin/env python3
"""Reads tollgate's JUnit reports with junitparser (PyPI), as CI plugins do, and checks that
what it reads agrees with the JSON report of the same run: as many cases, failures and errors,
the totals on <testsuites> and <testsuite> equal to the cases under them, every case timed,
and every case's classname the file of its suite.

Usage: junit_check.py NAME REPORT.xml REPORT.json [NAME REPORT.xml REPORT.json ...]
Prints every problem found and exits 1 if there was one.
"""

import json
import sys

from junitparser import Error, Failure, JUnitXml


def expected(report):
    """(tests, failures, errors) the JSON report implies: a case per object, per finding
    without an object and per input error; an object fails with a deny finding of its own."""
    findings = report["findings"]
    objectless = [f for f in findings if "object" not in f]

    def denied(o):
        return any(
            f["level"] == "deny"
            and f.get("object") == o["object"]
            and f["location"].get("file") == o["location"].get("file")
            for f in findings
        )

    objects = report["objects"]
    return (
        len(objects) + len(objectless) + len(report["errors"]),
        sum(1 for o in objects if denied(o))
        + sum(1 for f in objectless if f["level"] == "deny"),
        len(report["errors"]),
    )


def check(name, xml_path, json_path):
    problems = []
    with open(json_path, encoding="utf-8") as f:
        want = expected(json.load(f))
    xml = JUnitXml.fromfile(xml_path)
    if not isinstance(xml, JUnitXml):
        return [f"{name}: the root is not <testsuites>"]
    seen = [0, 0, 0]
    for suite in xml:
        cases = list(suite)
        counted = (
            len(cases),
            sum(1 for c in cases if any(isinstance(r, Failure) for r in c.result)),
            sum(1 for c in cases if any(isinstance(r, Error) for r in c.result)),
        )
        declared = (suite.tests, suite.failures, suite.errors)
        if declared != counted:
            problems.append(f"{name}: suite {suite.name!r} declares {declared}, holds {counted}")
        if suite.time is None:
            problems.append(f"{name}: suite {suite.name!r} has no time")
        file = suite._elem.get("file")
        for c in cases:
            if c.time is None or c._elem.get("time") is None:
                problems.append(f"{name}: case {c.name!r} has no time")
            if file is not None and c.classname != file:
                problems.append(
                    f"{name}: case {c.name!r} has classname {c.classname!r}, its suite's file is {file!r}"
                )
        seen = [a + b for a, b in zip(seen, counted)]
    if tuple(seen) != want:
        problems.append(f"{name}: (tests, failures, errors) {tuple(seen)}, the JSON report says {want}")
    totals = (xml.tests, xml.failures, xml.errors)
    if totals != want:
        problems.append(f"{name}: <testsuites> declares {totals}, the JSON report says {want}")
    return problems


def main(args):
    if not args or len(args) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    problems = []
    for i in range(0, len(args), 3):
        problems += check(*args[i : i + 3])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
