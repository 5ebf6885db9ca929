//! The reports, judged by the real tools of their ecosystems: one test per tool, each over a set
//! of reports that covers the commands and the awkward inputs (stdin, broken YAML, file names
//! that need escaping, files outside the repository).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::git::{BAD, GOOD, GitRepo, deployment};
use crate::support::tools;

/// Run the binary in `dir` with `stdin`, returning stdout; any exit code but a crash is fine
/// here (reports of violations and input errors are what is validated).
fn report_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_POLICY")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().expect("no crash");
    assert!(
        code <= 2,
        "{args:?} exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A deploy repository with a change for `ci`, files whose names need escaping, a broken file,
/// and a manifest outside it.
struct Fixture {
    repo: GitRepo,
    outside: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let repo = GitRepo::init();
    repo.write("apps/api.yaml", &deployment("api", GOOD));
    repo.commit("api");
    repo.git(&["checkout", "-q", "-b", "change"]);
    repo.write("apps/web.yaml", &deployment("web", BAD));
    repo.write("apps/my app#1.yaml", &deployment("odd", "nginx:latest"));
    repo.write("apps/ünïcode & 50%.yaml", &deployment("uni", BAD));
    repo.write("apps/broken.yaml", "apiVersion: v1\nkind: [\n");
    repo.write("apps/empty.yaml", "# rendered by a step that failed\n");
    repo.write(
        "apps/stray.yaml",
        &format!("{}---\nfoo: bar\n", deployment("stray", GOOD)),
    );
    repo.commit("change");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), deployment("x", BAD)).unwrap();
    Fixture { repo, outside }
}

/// The SARIF reports: `check` of the tree, of one file outside the repository (relative and
/// absolute), of stdin with and without `--stdin-name`, of broken input, with a help base URI,
/// and `ci` on the change.
fn sarif_reports(f: &Fixture) -> Vec<(&'static str, String)> {
    let root = &f.repo.path;
    let apps = root.join("apps");
    let outside_rel = format!(
        "../../{}/x.yaml",
        f.outside.path().file_name().unwrap().to_str().unwrap()
    );
    let outside_abs = f.outside.path().join("x.yaml");
    let manifest = deployment("piped", BAD);
    let sarif = ["--format", "sarif"];
    let with =
        |extra: &[&'static str]| -> Vec<&str> { sarif.iter().chain(extra).copied().collect() };
    let _ = &with;
    vec![
        (
            "check-tree",
            report_in(root, &["check", ".", "--format", "sarif"], None),
        ),
        (
            "check-subdir",
            report_in(
                &apps,
                &["check", ".", "../apps/web.yaml", "--format", "sarif"],
                None,
            ),
        ),
        ("check-outside-relative", {
            // From a temporary directory's sibling: a path that climbs out of the repository.
            let args = ["check", outside_rel.as_str(), "--format", "sarif"];
            report_in(&apps, &args, None)
        }),
        (
            "check-outside-absolute",
            report_in(
                root,
                &["check", outside_abs.to_str().unwrap(), "--format", "sarif"],
                None,
            ),
        ),
        (
            "check-stdin",
            report_in(root, &["check", "-", "--format", "sarif"], Some(&manifest)),
        ),
        (
            "check-stdin-named",
            report_in(
                root,
                &[
                    "check",
                    "-",
                    "--stdin-name",
                    "apps/rendered.yaml",
                    "--format",
                    "sarif",
                ],
                Some(&manifest),
            ),
        ),
        (
            "check-stdin-empty",
            report_in(root, &["check", "-", "--format", "sarif"], Some("")),
        ),
        (
            "check-broken",
            report_in(
                root,
                &["check", "apps/broken.yaml", "--format", "sarif"],
                None,
            ),
        ),
        (
            "check-help-uri",
            report_in(
                root,
                &[
                    "check",
                    "apps",
                    "--format",
                    "sarif",
                    "--help-base-uri",
                    "https://docs.example.org/policies/README.md",
                ],
                None,
            ),
        ),
        (
            "ci",
            report_in(root, &["ci", "--base", "main", "--format", "sarif"], None),
        ),
    ]
}

/// GitHub code scanning's rules (`Gh`) and the SARIF specification's (`Sarif`), through the
/// multitool's own binary (its npx wrapper would split the `;`): no error and no warning on
/// any report.
#[test]
fn sarif_reports_pass_the_sarif_multitool_with_githubs_rules() {
    let multitool = tools::sarif_multitool();
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, sarif) in sarif_reports(&f) {
        let v: Value =
            serde_json::from_str(&sarif).unwrap_or_else(|e| panic!("{name}: {e}\n{sarif}"));
        assert_eq!(v["version"], "2.1.0", "{name}");
        let path = dir.path().join(format!("{name}.sarif"));
        std::fs::write(&path, &sarif).unwrap();
        files.push(path);
    }
    let out_path = dir.path().join("validation.sarif");
    let out = Command::new(&multitool)
        // .NET needs ICU for culture data unless told not to; a fresh machine may lack libicu.
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .arg("validate")
        // The files first: `--log` takes a list, and would take them too.
        .args(&files)
        .args(["--rule-kind", "Sarif;Gh"])
        .arg("--output")
        .arg(&out_path)
        .args(["--log", "ForceOverwrite"])
        .output()
        .expect("run the SARIF multitool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the multitool failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let validation: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let problems: Vec<String> = validation["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| matches!(r["level"].as_str(), Some("error" | "warning") | None))
        .map(|r| {
            format!(
                "{} {}: {}",
                r["ruleId"].as_str().unwrap_or("?"),
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap_or("?"),
                r["message"]["text"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n{stdout}",
        problems.len(),
        problems.join("\n")
    );
}

/// What code scanning relies on beyond the schema: repository-relative URIs under %SRCROOT%,
/// fingerprints that survive moved lines, one category per command, rule help.
#[test]
fn sarif_files_are_repository_relative_and_findings_keep_their_identity_when_lines_move() {
    let f = fixture();
    let root = &f.repo.path;
    let apps = root.join("apps");
    let results = |sarif: &str| -> Vec<Value> {
        let v: Value = serde_json::from_str(sarif).unwrap();
        v["runs"][0]["results"].as_array().unwrap().clone()
    };
    // From a subdirectory, `.` is still written from the repository's root.
    let sub = report_in(&apps, &["check", "web.yaml", "--format", "sarif"], None);
    let r = results(&sub);
    let loc = &r[0]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(
        (loc["uri"].as_str(), loc["uriBaseId"].as_str()),
        (Some("apps/web.yaml"), Some("%SRCROOT%"))
    );
    let v: Value = serde_json::from_str(&sub).unwrap();
    let base = v["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        .as_str()
        .unwrap();
    assert!(
        base.starts_with("file:///") && base.ends_with('/'),
        "{base}"
    );
    assert_eq!(v["runs"][0]["automationDetails"]["id"], "tollgate/check/");
    let rule = &v["runs"][0]["tool"]["driver"]["rules"][2];
    assert_eq!(rule["name"], "RegistryNotApproved");
    assert!(rule["fullDescription"]["text"].as_str().unwrap().len() > 40);
    assert!(
        rule["help"]["markdown"]
            .as_str()
            .unwrap()
            .contains("spec.rules")
    );
    assert_eq!(rule["properties"]["security-severity"], "8.0");
    // Escaped names.
    let odd = report_in(
        root,
        &["check", "apps/my app#1.yaml", "--format", "sarif"],
        None,
    );
    let r = results(&odd);
    assert_eq!(
        r[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "apps/my%20app%231.yaml"
    );
    // Moving the finding down five lines keeps its fingerprint.
    let fingerprints = |sarif: &str| -> Vec<String> {
        results(sarif)
            .iter()
            .map(|r| {
                r["partialFingerprints"]["tollgateFinding/v1"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let before = fingerprints(&report_in(
        root,
        &["check", "apps/web.yaml", "--format", "sarif"],
        None,
    ));
    f.repo.write(
        "apps/web.yaml",
        &format!("# a\n# b\n# c\n# d\n# e\n{}", deployment("web", BAD)),
    );
    let after = fingerprints(&report_in(
        root,
        &["check", "apps/web.yaml", "--format", "sarif"],
        None,
    ));
    assert!(!before.is_empty());
    assert_eq!(before, after);
    // `ci` is its own category.
    let ci = report_in(root, &["ci", "--base", "main", "--format", "sarif"], None);
    let v: Value = serde_json::from_str(&ci).unwrap();
    assert_eq!(v["runs"][0]["automationDetails"]["id"], "tollgate/ci/");
}

/// Files whose names, objects and contents XML cannot take as they are: markup characters and
/// quotes, control characters, a name that is not UTF-8, and a YAML error about a character
/// XML 1.0 has no room for.
fn hostile_dir() -> tempfile::TempDir {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &std::ffi::OsStr, text: &str| std::fs::write(dir.path().join(name), text);
    write("a<b>&\"q'.yaml".as_ref(), &deployment("markup", BAD)).unwrap();
    write("ctl\u{1}\u{1b}[31m.yaml".as_ref(), &deployment("ctl", BAD)).unwrap();
    write(
        std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9.yaml"),
        &deployment("latin", "nginx:latest"),
    )
    .unwrap();
    write(
        "names.yaml".as_ref(),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"x\\u0001<&>\\\"y]]>\\u001b[0m\"\n  namespace: \"n\\ts\"\nspec:\n  containers:\n    - name: \"c\\r\\n<\"\n      image: \"r.example.org/a<b>&:1\\u0007\"\n",
    )
    .unwrap();
    write("raw-control.yaml".as_ref(), "a: \"\u{1}\u{2}\"\nb: [\n").unwrap();
    dir
}

/// The JUnit reports, each with the JSON report of the same run: `check` of the repository
/// (odd names, broken and empty files, a stray document), of a broken file, of a file outside
/// the repository, of stdin (a manifest, and nothing), of XML-hostile names and contents, and
/// `ci` on the change.
fn junit_reports(f: &Fixture, hostile: &Path) -> Vec<(&'static str, String, String)> {
    let root = &f.repo.path;
    let outside = f.outside.path().join("x.yaml");
    let manifest = deployment("piped", BAD);
    let runs: Vec<(&str, &Path, Vec<&str>, Option<&str>)> = vec![
        ("check-tree", root, vec!["check", "."], None),
        (
            "check-broken",
            root,
            vec!["check", "apps/broken.yaml"],
            None,
        ),
        (
            "check-outside",
            root,
            vec!["check", outside.to_str().unwrap()],
            None,
        ),
        ("check-stdin", root, vec!["check", "-"], Some(&manifest)),
        ("check-stdin-empty", root, vec!["check", "-"], Some("")),
        (
            "check-stdin-required",
            root,
            vec!["check", "-", "--require-objects"],
            Some(""),
        ),
        ("check-hostile", hostile, vec!["check", "."], None),
        ("ci", root, vec!["ci", "--base", "main"], None),
    ];
    runs.into_iter()
        .map(|(name, dir, args, stdin)| {
            let with = |format: &'static str| -> String {
                let mut a = args.clone();
                a.extend(["--format", format]);
                report_in(dir, &a, stdin)
            };
            (name, with("junit"), with("json"))
        })
        .collect()
}

/// The Jenkins xunit schema (junit-10.xsd) through libxml2's xmllint, and junitparser (PyPI)
/// reading every report to the same counts as the JSON report of the same run.
#[test]
fn junit_reports_pass_the_jenkins_xsd_and_junitparser() {
    let xsd = tools::junit_xsd();
    let xmllint = tools::debian("/usr/bin/xmllint", "libxml2-utils");
    let python = tools::python_with("junitparser", "junitparser==5.0.3");
    let f = fixture();
    let hostile = hostile_dir();
    let dir = tempfile::tempdir().unwrap();
    let mut xml_files = Vec::new();
    let mut triples = Vec::new();
    for (name, xml, json) in junit_reports(&f, hostile.path()) {
        let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let xml_path = dir.path().join(format!("{name}.xml"));
        let json_path = dir.path().join(format!("{name}.json"));
        std::fs::write(&xml_path, &xml).unwrap();
        std::fs::write(&json_path, &json).unwrap();
        // The set covers what it says it does: every report has cases, and between them there
        // are failures, input errors and cases without an object.
        assert!(xml.contains("<testcase "), "{name}:\n{xml}");
        if name == "check-hostile" {
            assert!(
                !v["errors"].as_array().unwrap().is_empty(),
                "{name}: {json}"
            );
            assert!(
                xml.contains("\\u{1}") && xml.contains("&lt;&amp;&gt;"),
                "{xml}"
            );
        }
        xml_files.push(xml_path.clone());
        triples.extend([name.into(), xml_path, json_path]);
    }
    let out = Command::new(&xmllint)
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .args(&xml_files)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "junit-10.xsd refuses a report:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/junit_check.py");
    let out = Command::new(&python)
        .arg(script)
        .args(&triples)
        .output()
        .expect("run tests/tools/junit_check.py");
    assert!(
        out.status.success(),
        "junitparser disagrees with the JSON reports:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
