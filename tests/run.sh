#!/usr/bin/env bash
# Installs what the test suite needs and runs it. CI (.ci/run) calls exactly this script, on a
# machine that may be new, so every prerequisite is installed here, not by hand.
#
# Prerequisites, each checked and installed before the tests run; a missing one is never a
# skipped test:
# - git;
# - Debian's docker-registry package: the CNCF distribution registry the registry tests start
#   on a loopback port (tests/common/registry.rs);
# - coreutils' `timeout`, which bounds every test registry's lifetime;
# - Debian's postgresql package: tests/common/postgres.rs runs its initdb and postgres in a
#   temporary directory on a loopback port, as the unprivileged `postgres` user the package
#   creates, for the catalog tests (tests/it/catalog.rs); util-linux's setpriv switches to it;
# - Debian's chromium and chromium-driver: the catalog's web page is tested in a real headless
#   Chromium, driven through chromedriver's WebDriver API (tests/it/catalog_web.rs);
# - GNU time, which measures the binary's peak memory in the streaming tests;
# - Python 3 with pip, and the Helm v4 SDK from PyPI (helm-python-sdk: a self-contained wheel,
#   no helm binary, no Go), which tests/it/chart.rs drives through tests/helm/render.py to lint
#   and render charts/tollgate with real Helm;
# - the real validators of the formats tollgate writes, each pinned and cached under
#   $TOLLGATE_TOOLS_DIR (default ~/.cache/tollgate/tools) so a machine downloads it once:
#   Microsoft's SARIF multitool (npm, with npm from Debian); for JUnit, the Jenkins xunit
#   schema junit-10.xsd (taken from PyPI's pytest source distribution, which carries it),
#   libxml2's xmllint (Debian's libxml2-utils) and junitparser (PyPI); for Prometheus,
#   promtool (Debian's prometheus package); for OpenReports, check-jsonschema (PyPI);
# - rustfmt and clippy, which run before the tests: unformatted code or a clippy warning (the
#   purity list of clippy.toml among them) fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "tests/run.sh: cargo is missing; install the Rust toolchain (https://rustup.rs) and retry" >&2
  exit 2
fi
missing=()
need git || missing+=(git)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
need timeout || missing+=(coreutils)
{ compgen -G '/usr/lib/postgresql/*/bin/initdb' && id -u postgres; } >/dev/null 2>&1 ||
  missing+=(postgresql)
need setpriv || missing+=(util-linux)
need curl || missing+=(curl)
[ -x /usr/bin/time ] || missing+=(time)
need python3 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
need npm || missing+=(npm)
# The RSA signature test signs with a key openssl makes at test time.
[ -x /usr/bin/openssl ] || missing+=(openssl)
need chromium || missing+=(chromium)
need chromedriver || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: need root to install ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import helm_python' >/dev/null 2>&1; then
  echo "tests/run.sh: installing helm-python-sdk (the Helm v4 SDK)" >&2
  # A Debian python3 refuses installs outside a virtualenv (PEP 668); this wheel has no
  # dependencies, so it cannot break the system's packages. Older pips ignore the variable.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet helm-python-sdk
  if ! python3 -c 'import helm_python' >/dev/null 2>&1; then
    echo "tests/run.sh: helm-python-sdk is installed but python3 cannot import helm_python" >&2
    exit 2
  fi
fi

# The real validators, cached: a machine pays for each download once.
TOLLGATE_TOOLS_DIR="${TOLLGATE_TOOLS_DIR:-$HOME/.cache/tollgate/tools}"
export TOLLGATE_TOOLS_DIR
SARIF_MULTITOOL_VERSION=5.7.0
sarif_dir="$TOLLGATE_TOOLS_DIR/sarif-multitool-$SARIF_MULTITOOL_VERSION"
TOLLGATE_SARIF_MULTITOOL="$sarif_dir/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
export TOLLGATE_SARIF_MULTITOOL
if [ ! -x "$TOLLGATE_SARIF_MULTITOOL" ]; then
  echo "tests/run.sh: installing @microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION (npm)" >&2
  npm install --prefix "$sarif_dir" --no-audit --no-fund --loglevel=error \
    "@microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION" >/dev/null
  # Its postinstall step (this chmod) is not run by an npm that asks before running scripts.
  chmod u+x "$TOLLGATE_SARIF_MULTITOOL"
fi

# pre-commit (PyPI), the real client of .pre-commit-hooks.yaml: tests/it/git_gates.rs installs
# its pre-push hook in a deploy repository and pushes through it. Pinned, and installed with
# `pip --target` into the tools directory rather than into the system's Python, so its
# dependencies (PyYAML, virtualenv...) never meet the distribution's; the tests run it as
# `python3 -m pre_commit` with that directory on PYTHONPATH. The test runs tollgate's
# `language: system` hook with the test binary on PATH, so no `cargo install` happens.
PRE_COMMIT_VERSION=4.7.0
TOLLGATE_PRE_COMMIT_DIR="$TOLLGATE_TOOLS_DIR/pre-commit-$PRE_COMMIT_VERSION"
export TOLLGATE_PRE_COMMIT_DIR
pre_commit_ok() {
  [ -f "$TOLLGATE_PRE_COMMIT_DIR/pre_commit/__main__.py" ] &&
    [ "$(PYTHONPATH="$TOLLGATE_PRE_COMMIT_DIR" python3 -m pre_commit --version 2>/dev/null)" = "pre-commit $PRE_COMMIT_VERSION" ]
}
# `pip --target DIR REQUIREMENT`, unless the check OK (a function) passes already, and OK must
# pass after it; MODULE names what is run, for the message.
pip_tool() {
  local dir=$1 requirement=$2 ok=$3 module=$4
  "$ok" && return 0
  echo "tests/run.sh: installing $requirement (PyPI)" >&2
  rm -rf "$dir"
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet \
    --disable-pip-version-check --target "$dir" "$requirement"
  if ! "$ok"; then
    echo "tests/run.sh: $requirement is installed in $dir but python3 -m $module does not run" >&2
    exit 2
  fi
}
pip_tool "$TOLLGATE_PRE_COMMIT_DIR" "pre-commit==$PRE_COMMIT_VERSION" pre_commit_ok pre_commit

# check-jsonschema (PyPI), the validator of the OpenReports objects `audit --format openreports`
# prints (tests/it/audit.rs checks them against the CRD's schema in
# tests/fixtures/openreports/). Pinned, and installed with `pip --target` like pre-commit, so
# its dependencies (jsonschema, referencing...) never meet the system's Python packages.
CHECK_JSONSCHEMA_VERSION=0.39.0
TOLLGATE_CHECK_JSONSCHEMA_DIR="$TOLLGATE_TOOLS_DIR/check-jsonschema-$CHECK_JSONSCHEMA_VERSION"
export TOLLGATE_CHECK_JSONSCHEMA_DIR
check_jsonschema_ok() {
  [ -f "$TOLLGATE_CHECK_JSONSCHEMA_DIR/check_jsonschema/__main__.py" ] &&
    PYTHONPATH="$TOLLGATE_CHECK_JSONSCHEMA_DIR" python3 -m check_jsonschema --version 2>/dev/null |
    grep -q "version $CHECK_JSONSCHEMA_VERSION\$"
}
pip_tool "$TOLLGATE_CHECK_JSONSCHEMA_DIR" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
  check_jsonschema_ok check_jsonschema

# The JUnit and Prometheus validators: xmllint and promtool from Debian, junitparser from PyPI,
# and junit-10.xsd, which no package ships on its own but pytest's sdist carries (PyPI); the
# schema is extracted into the tools cache, never committed.
junit_prom_missing=()
[ -x /usr/bin/xmllint ] || junit_prom_missing+=(libxml2-utils)
[ -x /usr/bin/promtool ] || junit_prom_missing+=(prometheus)
if [ ${#junit_prom_missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${junit_prom_missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: need root to install ${junit_prom_missing[*]} (sudo apt-get install ${junit_prom_missing[*]})" >&2
    exit 2
  fi
  apt-get update -qq
  # Only promtool is used: the prometheus package's recommended node exporter is not needed.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${junit_prom_missing[@]}" >/dev/null
fi
JUNITPARSER_VERSION=5.0.3
if [ "$(python3 -c 'import junitparser; print(junitparser.version)' 2>/dev/null)" != "$JUNITPARSER_VERSION" ]; then
  echo "tests/run.sh: installing junitparser==$JUNITPARSER_VERSION (PyPI)" >&2
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet "junitparser==$JUNITPARSER_VERSION"
fi
JUNIT_XSD_PYTEST_VERSION=8.3.4
TOLLGATE_JUNIT_XSD="$TOLLGATE_TOOLS_DIR/pytest-$JUNIT_XSD_PYTEST_VERSION/junit-10.xsd"
export TOLLGATE_JUNIT_XSD
if [ ! -s "$TOLLGATE_JUNIT_XSD" ]; then
  echo "tests/run.sh: extracting junit-10.xsd from the pytest $JUNIT_XSD_PYTEST_VERSION sdist (PyPI)" >&2
  sdist_dir="$(mktemp -d)"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip download --quiet --no-deps --no-binary :all: \
    "pytest==$JUNIT_XSD_PYTEST_VERSION" -d "$sdist_dir"
  mkdir -p "$(dirname "$TOLLGATE_JUNIT_XSD")"
  tar -xzOf "$sdist_dir/pytest-$JUNIT_XSD_PYTEST_VERSION.tar.gz" \
    "pytest-$JUNIT_XSD_PYTEST_VERSION/testing/example_scripts/junit-10.xsd" >"$TOLLGATE_JUNIT_XSD.part"
  mv "$TOLLGATE_JUNIT_XSD.part" "$TOLLGATE_JUNIT_XSD"
  rm -rf "$sdist_dir"
fi

# tollgate's own image (tests/it/image.rs runs image/build.sh): dpkg-deb and apt-get to fetch
# and unpack Debian's packages, binutils' strip and readelf, curl for the registry API. The
# script caches the .debs under $TOLLGATE_TOOLS_DIR/image-debs; apt-get download needs package
# lists, which a fresh machine (a Debian container) does not have yet.
image_missing=()
need dpkg-deb || image_missing+=(dpkg)
need apt-get || image_missing+=(apt)
{ need strip && need readelf; } || image_missing+=(binutils)
need curl || image_missing+=(curl)
image_lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' 2>/dev/null | head -n 1)
if [ ${#image_missing[@]} -gt 0 ] || [ -z "$image_lists" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: the image test needs root for apt-get update${image_missing[*]:+ and apt-get install ${image_missing[*]}}" >&2
    exit 2
  fi
  echo "tests/run.sh: apt-get update${image_missing[*]:+, installing ${image_missing[*]}} (the image test)" >&2
  apt-get update -qq
  if [ ${#image_missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${image_missing[@]}" >/dev/null
  fi
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "tests/run.sh: installing the $component component" >&2
    rustup component add "$component"
  fi
done
echo "tests/run.sh: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "tests/run.sh: cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --locked -- -D warnings

# One build shared by every test target; --locked so CI builds exactly Cargo.lock.
cargo test --locked "$@"

# Every parser of untrusted input under libFuzzer, TOLLGATE_FUZZ_SECONDS per target; fuzz/run.sh
# installs cargo-fuzz itself, and a crash fails the run (docs/FUZZING.md).
bash fuzz/run.sh "${TOLLGATE_FUZZ_SECONDS:-20}"
