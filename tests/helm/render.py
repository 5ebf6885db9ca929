#!/usr/bin/env python3
"""Lint and render a chart with real Helm (the Helm v4 SDK, helm-python-sdk), for tests/it/chart.rs.

    render.py CHART RELEASE NAMESPACE VALUES_JSON

Prints one JSON object on stdout:
    {"lint": {"messages": [...], "errors": [...]},   # what `helm lint` reports
     "schema_error": null | "...",                  # values.schema.json's verdict
     "render_error": null | "...",                  # what `helm template` fails with
     "manifests": {"template path": "YAML", ...}}   # what `helm template` prints
Lint findings and render failures are data for the test to assert on; exit code 0. Exit code 3
means Helm itself is missing, with a message that says how to install it.
"""

import json
import sys

try:
    import helm_python as helm
except ImportError as e:
    print(
        f"render.py: the Helm v4 SDK is missing ({e}); install it with "
        "`python3 -m pip install helm-python-sdk` (a Debian python3 also needs "
        "--break-system-packages), or run tests/run.sh, which installs it",
        file=sys.stderr,
    )
    sys.exit(3)


def main() -> None:
    chart_dir, release, namespace, values_json = sys.argv[1:]
    values = json.loads(values_json)
    out = {"lint": None, "schema_error": None, "render_error": None, "manifests": {}}

    lint = helm.lint(chart_dir, values, namespace=namespace, strict=True)
    out["lint"] = {"messages": lint["messages"], "errors": lint["errors"]}

    with helm.Chart.load(chart_dir) as chart:
        try:
            chart.validate_schema(values)
        except helm.HelmError as e:
            out["schema_error"] = str(e)
        try:
            out["manifests"] = chart.render(
                values, name=release, namespace=namespace, is_install=True
            )
        except helm.HelmError as e:
            out["render_error"] = str(e)

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
