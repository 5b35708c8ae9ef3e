//! A real browser for the report's tests: headless Chromium (the Debian package `chromium`,
//! which scripts/test.sh installs when missing) run in a network namespace of its own, so that
//! the page it opens could not fetch anything even if it tried.
//!
//! Console messages (an uncaught error, a `console.error`) reach its standard error through
//! `--enable-logging=stderr --v=0` as `CONSOLE` lines; [`Opened::console`] lists them.

use std::path::Path;
use std::process::Command;

/// What the browser made of a page.
pub struct Opened {
    /// The DOM after loading, as `--dump-dom` prints it.
    pub dom: String,
    /// The browser's own log lines about the page's console.
    pub console: Vec<String>,
}

fn chromium() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".to_string())
}

/// Runs Chromium headless on `page` with no network (`unshare --net`), with `args` after the
/// usual ones; its standard output and error.
fn run(page: &Path, args: &[&str]) -> (String, String) {
    let url = format!("file://{}", page.display());
    let out = Command::new("unshare")
        .arg("--net")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(&url)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `unshare --net {}` ({e}); install the Debian package `chromium` (scripts/ensure-packages.sh chromium) or set CHROMIUM_BIN", chromium())
        });
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Opens `page` offline and returns its DOM and console messages.
pub fn open(page: &Path) -> Opened {
    let (dom, log) = run(page, &["--dump-dom"]);
    let console = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(String::from)
        .collect();
    Opened { dom, console }
}

/// A screenshot of `page`, offline, `width` x `height` pixels, written to `png`.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) {
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size={width},{height}");
    run(page, &[&shot, &size, "--hide-scrollbars"]);
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot at {png:?}: {e}"));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{png:?} is not a PNG of a page ({} bytes)",
        bytes.len()
    );
}
