//! A small W3C WebDriver client for the console's browser tests: it starts chromedriver,
//! opens one headless Chromium session and drives it synchronously (navigate, find, type,
//! click, select, screenshot, run script, read cookies), and runs axe-core in the page.
//!
//! Why a hand-written client rather than `fantoccini`: chromedriver listens on plain HTTP on
//! loopback, every command is one small JSON request and answer, and the tests are
//! sequential. A blocking client over `std::net::TcpStream` (one connection per command,
//! `Connection: close`) is about 150 lines, adds no dependency and no async runtime to the
//! tests, and cannot drift from what it is: fantoccini would bring an async API (every test
//! would need a tokio runtime and `.await`s), hyper's client stack and cookie parsing, for
//! the same handful of endpoints.
//!
//! Environment (set by `cargo xtask test`, see `xtask/src/browser.rs`):
//! - `CALDICOTT_TEST_CHROMEDRIVER`: the chromedriver program; without it a test prints
//!   "skipping: no browser" and passes, unless `CALDICOTT_REQUIRE_BROWSER=1`, then it fails;
//! - `CALDICOTT_TEST_CHROMIUM`: the Chromium binary chromedriver starts;
//! - `CALDICOTT_TEST_AXE`: axe-core's `axe.min.js`, for [`Browser::axe`].
//!
//! Script execution through WebDriver is not bound by the page's Content-Security-Policy,
//! so axe-core runs inside the console's pages although they allow no script at all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The axe-core rule sets run on every page: WCAG 2.0, 2.1 and 2.2 A and AA, and axe's
/// best practices.
const AXE_TAGS: &[&str] = &[
    "wcag2a",
    "wcag2aa",
    "wcag21a",
    "wcag21aa",
    "wcag22aa",
    "best-practice",
];

/// One axe-core rule failed by a page.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The rule, e.g. `color-contrast`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    /// What the rule asks for, in one line.
    pub help: String,
    /// Where the rule is explained.
    pub help_url: String,
    /// A CSS selector for each offending element.
    pub targets: Vec<String>,
}

impl Violation {
    /// Whether it blocks: issue 8 allows no serious or critical violation.
    pub fn is_blocking(&self) -> bool {
        matches!(self.impact.as_str(), "serious" | "critical")
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] {}: {} ({}) at {}",
            self.impact,
            self.id,
            self.help,
            self.help_url,
            self.targets.join(", ")
        )
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, when the browser reports it.
    pub same_site: Option<String>,
}

/// An error answered by chromedriver.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The W3C error code, e.g. `no such element`.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // chromedriver's messages carry a long stack trace after the first line.
        let first = self.message.lines().next().unwrap_or("");
        write!(f, "{}: {first}", self.error)
    }
}

/// chromedriver with one headless Chromium session; both are ended on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    axe_path: Option<PathBuf>,
    // Chromium's profile and chromedriver's log; deleted on drop, after both have ended.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser, or returns `None` after printing why when no chromedriver is
    /// configured (`CALDICOTT_TEST_CHROMEDRIVER` unset) and none is required
    /// (`CALDICOTT_REQUIRE_BROWSER` is not `1`); a required but absent browser fails.
    pub fn start_or_skip() -> Option<Browser> {
        let driver = std::env::var_os("CALDICOTT_TEST_CHROMEDRIVER").filter(|d| !d.is_empty());
        let Some(driver) = driver else {
            assert!(
                std::env::var("CALDICOTT_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "CALDICOTT_REQUIRE_BROWSER=1 but CALDICOTT_TEST_CHROMEDRIVER is not set"
            );
            // Straight to stderr: libtest captures println!/eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr().lock(),
                "skipping: no browser (set CALDICOTT_TEST_CHROMEDRIVER)"
            );
            return None;
        };
        let chromium = std::env::var_os("CALDICOTT_TEST_CHROMIUM").filter(|c| !c.is_empty());
        let axe = std::env::var_os("CALDICOTT_TEST_AXE")
            .filter(|a| !a.is_empty())
            .map(PathBuf::from);
        Some(Browser::start(
            Path::new(&driver),
            chromium.as_deref().map(Path::new),
            axe,
        ))
    }

    /// Starts `driver` on a free loopback port and opens a session in `chromium` (or the
    /// browser chromedriver finds by itself).
    pub fn start(driver: &Path, chromium: Option<&Path>, axe: Option<PathBuf>) -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        // A port that was free a moment ago; chromedriver fails loudly if it was taken since.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: on drop, the group (chromedriver and every Chromium
            // process it started) is ended together, and nothing else.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let mut browser = Browser {
            driver: child,
            port,
            session: String::new(),
            axe_path: axe,
            dir,
        };
        browser.wait_ready();
        let profile = browser.dir.path().join("profile");
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--ignore-certificate-errors",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        });
        if let Some(chromium) = chromium {
            options["binary"] = json!(chromium.to_string_lossy());
        }
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    // The server's certificate is self-signed (made by `caldicott init`).
                    "acceptInsecureCerts": true,
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 60_000 },
                    "goog:chromeOptions": options,
                }
            }
        });
        let value = browser
            .request("POST", "/session", Some(&caps))
            .unwrap_or_else(|e| {
                panic!("cannot open a Chromium session: {e}{}", browser.log_tail())
            });
        browser.session = value["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// Waits (up to 20 s) until chromedriver answers `/status` with `ready`.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = self.request("GET", "/status", None)
                && v["ready"] == true
            {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited ({status}){}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready in 20 s{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of chromedriver's log, for failure messages.
    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("\nchromedriver log (last lines):\n{tail}")
    }

    /// One WebDriver command: its `value`, or the error chromedriver answered.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        let transport = |e: std::io::Error| WebDriverError {
            error: "transport".to_owned(),
            message: format!("{method} {path}: {e}"),
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut sock = TcpStream::connect(("127.0.0.1", self.port)).map_err(transport)?;
        // Longer than any page load or script timeout of the session.
        sock.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(transport)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        sock.write_all(head.as_bytes()).map_err(transport)?;
        sock.write_all(body.as_bytes()).map_err(transport)?;
        // chromedriver answers `Connection: close` but keeps the socket open: read the head,
        // then exactly Content-Length bytes (or chunks up to the end, should it chunk).
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let (split, head) = loop {
            if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break (
                    split,
                    String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
                );
            }
            let n = sock.read(&mut buf).map_err(transport)?;
            if n == 0 {
                return Err(transport(std::io::Error::other(
                    "no HTTP head in the answer",
                )));
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let length = head.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        let mut payload = raw.split_off(split + 4);
        match length {
            Some(length) => {
                while payload.len() < length {
                    let n = sock.read(&mut buf).map_err(transport)?;
                    if n == 0 {
                        return Err(transport(std::io::Error::other("truncated answer")));
                    }
                    payload.extend_from_slice(&buf[..n]);
                }
                payload.truncate(length);
            }
            None => {
                sock.read_to_end(&mut payload).map_err(transport)?;
                if head.contains("transfer-encoding: chunked") {
                    payload = dechunk(&payload);
                }
            }
        }
        let answer: Value = serde_json::from_slice(&payload).map_err(|e| WebDriverError {
            error: "transport".to_owned(),
            message: format!("{method} {path}: the answer is not JSON ({e})"),
        })?;
        let value = answer["value"].clone();
        match value["error"].as_str() {
            Some(error) => Err(WebDriverError {
                error: error.to_owned(),
                message: value["message"].as_str().unwrap_or("").to_owned(),
            }),
            None => Ok(value),
        }
    }

    /// A command in this session; a WebDriver error fails the test, naming the command and
    /// the page it was on.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        self.request(method, &full, body.as_ref())
            .unwrap_or_else(|e| {
                panic!(
                    "WebDriver {method} {path} failed: {e}{}",
                    self.page_context()
                )
            })
    }

    /// Where the browser is, for failure messages (never fails itself).
    fn page_context(&self) -> String {
        let url = self
            .request("GET", &format!("/session/{}/url", self.session), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!(" (on page {url})")
    }

    /// Navigates to `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The path (and query) of the current URL: `/signin/code` of `https://127.0.0.1:8/signin/code`.
    pub fn current_path(&self) -> String {
        let url = self.current_url();
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        match after_scheme.find('/') {
            Some(i) => after_scheme[i..].to_owned(),
            None => "/".to_owned(),
        }
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's current DOM serialised as HTML.
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first element matching `css`, or `None`.
    pub fn try_find(&self, css: &str) -> Option<String> {
        let full = format!("/session/{}/element", self.session);
        match self.request(
            "POST",
            &full,
            Some(&json!({"using": "css selector", "value": css})),
        ) {
            Ok(v) => Some(element_id(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("finding `{css}` failed: {e}{}", self.page_context()),
        }
    }

    /// The first element matching `css`; fails the test, with the page's source, if none.
    pub fn find(&self, css: &str) -> String {
        self.try_find(css).unwrap_or_else(|| {
            panic!(
                "no element matches `{css}`{}\n--- page source ---\n{}",
                self.page_context(),
                self.source()
            )
        })
    }

    /// Every element matching `css` (none is not an error).
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .map(|a| a.iter().map(element_id).collect())
            .unwrap_or_default()
    }

    /// The element's rendered text (as a user sees it).
    pub fn text(&self, el: &str) -> String {
        self.cmd("GET", &format!("/element/{el}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The text of the first element matching `css`.
    pub fn text_of(&self, css: &str) -> String {
        self.text(&self.find(css))
    }

    /// An attribute of the element as written in the HTML, or `None` when absent.
    pub fn attr(&self, el: &str, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{el}/attribute/{name}"), None)
            .as_str()
            .map(str::to_owned)
    }

    /// Clears the field matching `css` and types `value` into it.
    pub fn fill(&self, css: &str, value: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": value })),
        );
    }

    /// Clicks the element matching `css` that changes nothing but the page itself (no
    /// navigation is awaited).
    pub fn click_in_page(&self, css: &str) {
        let el = self.find(css);
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    /// Clicks the element matching `css` (a link or a form's button) and returns after the
    /// next page has loaded.
    pub fn click(&self, css: &str) {
        let el = self.find(css);
        // Mark the current document, click, then wait until a new document (without the
        // mark) has loaded: chromedriver may answer the click before a form post's answer
        // has replaced the page.
        let mark = format!("{:x}", rand::random::<u64>());
        self.execute("window.__caldicottMark = arguments[0];", vec![json!(mark)]);
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})));
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let state = self.execute(
                "return window.__caldicottMark === arguments[0] ? 'same' : document.readyState;",
                vec![json!(mark)],
            );
            if state == "complete" {
                return;
            }
            if std::time::Instant::now() > until {
                panic!(
                    "clicking `{css}` loaded no new page within 20 s{}",
                    self.page_context()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// Chooses the option with `value` in the `<select>` matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let el = self.find(css);
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let option = format!("option[value=\"{escaped}\"]");
        let found = self
            .request(
                "POST",
                &format!("/session/{}/element/{el}/element", self.session),
                Some(&json!({"using": "css selector", "value": option})),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "`{css}` has no option `{value}`: {e}{}",
                    self.page_context()
                )
            });
        let opt = element_id(&found);
        self.cmd("POST", &format!("/element/{opt}/click"), Some(json!({})));
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub fn screenshot_png(&self, path: &Path) {
        use base64::Engine as _;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("a base64 PNG from chromedriver");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Runs `script` as the body of a function in the page (`arguments[i]` are `args`) and
    /// returns what it returns.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script` until it calls its last argument (the callback) with the result.
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The cookies visible to the current page.
    pub fn cookies(&self) -> Vec<Cookie> {
        let v = self.cmd("GET", "/cookie", None);
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| Cookie {
                        name: c["name"].as_str().unwrap_or_default().to_owned(),
                        value: c["value"].as_str().unwrap_or_default().to_owned(),
                        path: c["path"].as_str().unwrap_or_default().to_owned(),
                        secure: c["secure"] == true,
                        http_only: c["httpOnly"] == true,
                        same_site: c["sameSite"].as_str().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs axe-core in the current page with [`AXE_TAGS`] and returns every violation.
    /// Needs `CALDICOTT_TEST_AXE`.
    pub fn axe(&self) -> Vec<Violation> {
        let path = self.axe_path.as_ref().unwrap_or_else(|| {
            panic!("CALDICOTT_TEST_AXE is not set: axe-core is needed for the accessibility check (cargo xtask test installs it)")
        });
        let source = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read axe-core at {}: {e}", path.display()));
        // Injected afresh into each page: a navigation discards it.
        let loaded = self.execute(&format!("{source}\n;return typeof window.axe;"), vec![]);
        assert_eq!(loaded, "object", "axe-core did not load in the page");
        let result = self.execute_async(
            "const done = arguments[arguments.length - 1];
             window.axe.run(document, { runOnly: arguments[0], resultTypes: ['violations'] })
               .then(r => done({ violations: r.violations.map(v => ({
                   id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
                   targets: v.nodes.map(n => n.target.join(' ')) })) }))
               .catch(e => done({ error: String(e) }));",
            vec![json!(AXE_TAGS)],
        );
        if let Some(error) = result["error"].as_str() {
            panic!("axe-core failed: {error}{}", self.page_context());
        }
        result["violations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| Violation {
                        id: v["id"].as_str().unwrap_or_default().to_owned(),
                        impact: v["impact"].as_str().unwrap_or_default().to_owned(),
                        help: v["help"].as_str().unwrap_or_default().to_owned(),
                        help_url: v["helpUrl"].as_str().unwrap_or_default().to_owned(),
                        targets: v["targets"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .map(|s| s.as_str().unwrap_or_default().to_owned())
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs axe-core and returns the serious and critical violations (those issue 8 allows
    /// none of); the minor and moderate ones are printed as notes about `page`.
    pub fn blocking_violations(&self, page: &str) -> Vec<Violation> {
        let (blocking, other): (Vec<_>, Vec<_>) =
            self.axe().into_iter().partition(Violation::is_blocking);
        for v in &other {
            let _ = writeln!(std::io::stderr().lock(), "axe note on {page}: {v}");
        }
        blocking
    }

    /// Fails when axe-core finds a serious or critical violation on the current page (named
    /// `page` in the message), listing each with its rule, help and elements.
    pub fn assert_accessible(&self, page: &str) {
        let blocking = self.blocking_violations(page);
        assert!(
            blocking.is_empty(),
            "axe-core: {} serious or critical violation(s) on the {page} page{}:\n{}",
            blocking.len(),
            self.page_context(),
            blocking
                .iter()
                .map(|v| format!("  {v}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium cleanly; the group kill below is the backstop.
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        }
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

fn element_id(v: &Value) -> String {
    v[ELEMENT_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("not an element reference: {v}"))
        .to_owned()
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 2 + size + 2).min(raw.len())..];
    }
    out
}

impl Browser {
    /// Resizes the window so that the page's viewport (what a screenshot shows) is
    /// `width`×`height` CSS pixels: the window size Chromium is started with includes its
    /// (headless) frame, so the viewport is measured and the window grown by the difference.
    pub fn set_viewport(&self, width: u32, height: u32) {
        let rect = self.cmd("GET", "/window/rect", None);
        let inner = self.execute("return [window.innerWidth, window.innerHeight];", vec![]);
        let frame = |outer: &Value, inner: &Value| {
            outer.as_i64().unwrap_or(0) - inner.as_i64().unwrap_or(0)
        };
        let w = i64::from(width) + frame(&rect["width"], &inner[0]);
        let h = i64::from(height) + frame(&rect["height"], &inner[1]);
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": w.max(1), "height": h.max(1) })),
        );
    }
}
