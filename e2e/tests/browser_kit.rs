//! The browser kit checks itself: a page that does fetch something from elsewhere is caught by the
//! request counter, so "no request leaves the page" in the report tests is a claim that can fail.

use benchfarm_e2e::browser;

#[test]
fn a_page_that_fetches_from_a_cdn_is_caught() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = browser::CountingProxy::start(
        "<!doctype html><title>t</title><img src=\"https://cdn.example.com/pixel.png\">\
         <script src=\"http://cdn.example.net/lib.js\"></script><p id=\"x\">ok</p>"
            .to_string(),
    );
    let dom = page.dump_dom(&chromium, &dir.path().join("profile"));
    assert!(dom.contains("<p id=\"x\">ok</p>"), "{dom}");
    assert!(page.served_the_page());
    let fetched = page.requests_beyond_the_page();
    assert!(
        fetched
            .iter()
            .any(|l| l.starts_with("CONNECT cdn.example.com:443"))
            && fetched
                .iter()
                .any(|l| l.starts_with("GET http://cdn.example.net/lib.js")),
        "{fetched:?}"
    );
}
