//! The catalog's web page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven through chromedriver's W3C WebDriver API by a few JSON requests:
//! the list loads, a click goes through to an image, the timeline is there, and a hostile
//! label shows as text with no script run. A screenshot is kept in target/ as an artifact.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::catalog_read::{Backend, HOSTILE, Served, client, db, runtime, stop, story};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn start_driver() -> Driver {
    let install = "the web page test needs Debian's chromium and chromium-driver: run \
                   `apt-get install -y chromium chromium-driver`, or tests/run.sh, which installs them";
    let driver = which("chromedriver").unwrap_or_else(|| panic!("no chromedriver: {install}"));
    which("chromium").unwrap_or_else(|| panic!("no chromium: {install}"));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("timeout")
        .args(["-k", "5", "300"])
        .arg(driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// One WebDriver session.
struct Browser {
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    async fn open(driver: &Driver) -> Browser {
        let http = client();
        let start = Instant::now();
        // chromedriver answers /status once it listens.
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not answer in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": which("chromium").unwrap(),
                // Root in a container: Chromium's sandbox needs namespaces it cannot have.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,900"],
            },
        }}});
        let text = http
            .post(format!("{}/session", driver.base))
            .header("content-type", "application/json")
            .body(caps.to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let r: Value = serde_json::from_str(&text).unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver made no session: {r}"))
            .to_owned();
        Browser {
            base: driver.base.clone(),
            session,
            http,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    async fn text(&self, element: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn close(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

#[rstest::rstest]
fn the_page_lists_images_clicks_through_to_a_timeline_and_escapes_a_hostile_label(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let db = db(backend);
    story(&db);
    needs_update(&db);
    let served = Served::start(&db, None);
    let driver = start_driver();
    // target/debug/tollgate -> target/
    let shot = std::path::Path::new(env!("CARGO_BIN_EXE_tollgate"))
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join(format!("catalog-web-image-{backend:?}.png").to_lowercase());
    runtime().block_on(async {
        let b = Browser::open(&driver).await;
        // The session is closed whatever the checks do: a session left open keeps its
        // Chromium running after chromedriver has gone.
        let checks = std::panic::AssertUnwindSafe(check_page(&b, &served, &shot));
        let outcome = futures_util::FutureExt::catch_unwind(checks).await;
        b.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

async fn check_page(b: &Browser, served: &Served, shot: &std::path::Path) {
    {
        b.goto(&served.url("/")).await;
        let title = b.script("return document.title").await;
        assert_eq!(title, "Image catalog");
        let rows = b.find_all("#images tr.version").await;
        assert_eq!(rows.len(), 5, "five versions in three repositories");
        // The filter box is shown by the page's own script (allowed by its hash).
        let hidden = b
            .script("return document.getElementById('filter').hidden")
            .await;
        assert_eq!(hidden, false, "the inline script ran");
        // Typing in it hides the rows that do not match.
        let filter = b.find_all("#filter").await;
        b.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", filter[0]),
            Some(json!({ "text": "tool" })),
        )
        .await;
        let shown = b
            .script("return [...document.querySelectorAll('#images tr.version')].filter(r => !r.hidden).length")
            .await;
        assert_eq!(shown, 1, "only tool's row is left");
        // Back to the whole list.
        b.goto(&served.url("/")).await;

        // Click through to app's older version, the one with the hostile label: its link
        // names it by the short digest, its address by the whole one.
        let a1 = b
            .script(
                "return [...document.querySelectorAll('#images a.image-link')]\
                 .find(a => a.href.endsWith('0000000000a1')) || null",
            )
            .await;
        let a1 = a1[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("a link to A1 on the list page: {a1}"))
            .to_owned();
        b.call(
            reqwest::Method::POST,
            &format!("/element/{a1}/click"),
            Some(json!({})),
        )
        .await;
        let start = Instant::now();
        while b.find_all("#timeline").await.is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the image page did not load"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bars = b.find_all("#timeline g.bar").await;
        assert!(!bars.is_empty(), "the timeline has bars");
        let h1 = b.find_all("h1").await;
        assert!(b.text(&h1[0]).await.contains("app@sha256:"));

        // The label is on the page as text, and nothing it carries ran.
        let labels = b.find_all("#versions td.labels").await;
        let mut shown = Vec::new();
        for l in &labels {
            shown.push(b.text(l).await);
        }
        assert!(
            shown.iter().any(|t| t.contains(HOSTILE)),
            "the hostile label shows as text: {shown:?}"
        );
        let pwned = b
            .script("return [document.title, window.pwned === undefined]")
            .await;
        assert_eq!(pwned[1], true, "no script from the label ran: {pwned}");
        assert_ne!(pwned[0], "pwned");
        let injected = b
            .script("return document.querySelectorAll('td.labels img, td.labels script').length")
            .await;
        assert_eq!(injected, 0, "the label made no element");

        let png = b.call(reqwest::Method::GET, "/screenshot", None).await;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
        std::fs::write(shot, bytes).unwrap();
    }
    check_security(b, served).await;
}

/// Issue 16's rows for the story, by SQL (what `catalog inventory` and `import-advisories`
/// write): A2 (running in prod and staging) carries a package from the layer base:bookworm
/// (B2) ends with, whose source has a fix it lacks; the binary's name is hostile, as a name
/// read from an attacker's image can be.
fn needs_update(db: &crate::catalog_read::Db) {
    let a2 = crate::catalog_read::digest(crate::catalog_read::A2);
    let l3 = format!("sha256:{:064x}", 0x1000 + 3);
    let name = HOSTILE.replace('\'', "''");
    db.raw(&format!(
        "INSERT INTO package_sets (set_key, package_count) VALUES ('s1', 1);\n\
         INSERT INTO package_set_entries (set_key, name, architecture, version, source, source_version, layer_position, layer_digest) \
         VALUES ('s1', '{name}', 'amd64', '1.0-1', 'libfoo', '1.0-1', 1, '{l3}');\n\
         INSERT INTO image_inventories (manifest_digest, scanner, computed_at, has_dpkg, complete, \
         os_id, os_version, os_codename, os_pretty_name, set_key, problems) \
         VALUES ('{a2}', 1, 1700000000, 1, 1, 'debian', '12', 'bookworm', 'Debian GNU/Linux 12 (bookworm)', 's1', '[]');\n\
         INSERT INTO security_imports (origin, imported_at, location, releases, advisories, errors) \
         VALUES ('debian-tracker', 1700000000, 'tracker.json', '[\"bookworm\"]', 1, 0);\n\
         INSERT INTO advisories (origin, release, package, id, status, fixed_version, urgency) \
         VALUES ('debian-tracker', 'bookworm', 'libfoo', 'CVE-2024-0001', 'fixed', '1.0-2', 'high');\n"
    ));
}

async fn check_security(b: &Browser, served: &Served) {
    b.goto(&served.url("/")).await;
    let link = b.find_all("#needs-update").await;
    assert_eq!(link.len(), 1, "the list page links the needs-update view");
    b.call(
        reqwest::Method::POST,
        &format!("/element/{}/click", link[0]),
        Some(json!({})),
    )
    .await;
    let start = Instant::now();
    while b.script("return document.title").await != "Needs update" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the needs-update page did not load"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let groups = b.find_all("section.rebuild.base").await;
    assert_eq!(groups.len(), 1);
    let h2 = b.find_all("section.rebuild.base h2").await;
    let title = b.text(&h2[0]).await;
    assert!(
        title.contains("rebuild base") && title.contains("base:bookworm"),
        "{title}"
    );
    let p = b
        .script("return document.querySelector('section.rebuild.base p').textContent")
        .await;
    assert_eq!(
        p, "fixes 1 image running in 4 pods",
        "prod's 2 pods and staging's 2"
    );
    let fix = b
        .script("return document.querySelector('tr.fix').textContent")
        .await;
    let fix = fix.as_str().unwrap();
    assert!(fix.contains("libfoo1.0-11.0-2"), "{fix}");
    assert!(
        fix.contains(HOSTILE),
        "the hostile name shows as text: {fix}"
    );
    let clean = b
        .script(
            "return [window.pwned === undefined, document.querySelectorAll('tr.fix img, tr.fix script').length]",
        )
        .await;
    assert_eq!(clean, json!([true, 0]), "nothing from the package name ran");

    // The same report as JSON, for scripts.
    b.goto(&served.url("/v1/security?urgency=high")).await;
    let body = b.script("return document.body.innerText").await;
    let report: Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
    assert_eq!(report["imagesNeedingUpdate"], 1, "{report}");
    assert_eq!(report["groups"][0]["kind"], "base");
}
