//! The real validators of the formats tollgate writes, installed and cached by tests/run.sh. A
//! missing one fails the test that needs it, saying how to install it: never a skipped test.

use std::path::PathBuf;

/// Where tests/run.sh caches the tools.
fn tools_dir() -> PathBuf {
    match std::env::var_os("TOLLGATE_TOOLS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/tollgate/tools"),
    }
}

/// A tool tests/run.sh installs: `env` names it when the script ran, else it is looked for at
/// `default` under the tools directory.
pub fn tool(env: &str, default: &str, install: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join(default));
    assert!(
        path.is_file(),
        "{} is not installed (looked for {}); run tests/run.sh, which installs it, or: {install}",
        env,
        path.display()
    );
    path
}

/// Microsoft's SARIF multitool (`@microsoft/sarif-multitool` from npm).
pub fn sarif_multitool() -> PathBuf {
    tool(
        "TOLLGATE_SARIF_MULTITOOL",
        "sarif-multitool-5.7.0/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool",
        "npm install --prefix ~/.cache/tollgate/tools/sarif-multitool-5.7.0 @microsoft/sarif-multitool@5.7.0 && chmod u+x ~/.cache/tollgate/tools/sarif-multitool-5.7.0/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool",
    )
}

/// The pre-commit framework (`pre-commit` from PyPI), installed by tests/run.sh with
/// `pip --target` into a directory of its own (`TOLLGATE_PRE_COMMIT_DIR`): run it as
/// `python3 -m pre_commit` with that directory on PYTHONPATH.
pub fn pre_commit_dir() -> PathBuf {
    let dir = std::env::var_os("TOLLGATE_PRE_COMMIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("pre-commit-4.7.0"));
    assert!(
        dir.join("pre_commit/__main__.py").is_file(),
        "TOLLGATE_PRE_COMMIT_DIR: pre-commit is not installed (looked in {}); run tests/run.sh, \
         which installs it, or: PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --target \
         ~/.cache/tollgate/tools/pre-commit-4.7.0 pre-commit==4.7.0",
        dir.display()
    );
    dir
}

/// check-jsonschema (PyPI), the JSON Schema validator the OpenReports objects are checked
/// with, installed by tests/run.sh with `pip --target` into a directory of its own
/// (`TOLLGATE_CHECK_JSONSCHEMA_DIR`): run it as `python3 -m check_jsonschema` with that
/// directory on PYTHONPATH.
pub fn check_jsonschema_dir() -> PathBuf {
    let dir = std::env::var_os("TOLLGATE_CHECK_JSONSCHEMA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join("check-jsonschema-0.39.0"));
    assert!(
        dir.join("check_jsonschema/__main__.py").is_file(),
        "TOLLGATE_CHECK_JSONSCHEMA_DIR: check-jsonschema is not installed (looked in {}); run \
         tests/run.sh, which installs it, or: PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install \
         --target ~/.cache/tollgate/tools/check-jsonschema-0.39.0 check-jsonschema==0.39.0",
        dir.display()
    );
    dir
}

/// The Jenkins xunit JUnit schema, `junit-10.xsd`: it has no package of its own, and PyPI's
/// pytest source distribution carries it (`testing/example_scripts/junit-10.xsd`).
pub fn junit_xsd() -> PathBuf {
    tool(
        "TOLLGATE_JUNIT_XSD",
        "pytest-8.3.4/junit-10.xsd",
        "python3 -m pip download --no-deps --no-binary :all: pytest==8.3.4 -d /tmp/p && mkdir -p ~/.cache/tollgate/tools/pytest-8.3.4 && tar -xzOf /tmp/p/pytest-8.3.4.tar.gz pytest-8.3.4/testing/example_scripts/junit-10.xsd > ~/.cache/tollgate/tools/pytest-8.3.4/junit-10.xsd",
    )
}

/// A program of a Debian package, at its packaged path.
pub fn debian(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} is not installed; run tests/run.sh, which installs it, or: apt-get install {package}",
        path.display()
    );
    path
}

/// Python 3 with `module` importable: the interpreter to run a script that needs it with.
pub fn python_with(module: &str, requirement: &str) -> PathBuf {
    let python = PathBuf::from("python3");
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python3 cannot import {module}; run tests/run.sh, which installs it, or: PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install {requirement}"
    );
    python
}
