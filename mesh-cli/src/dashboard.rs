//! The live dashboard's page, script and style, compiled into the binary so a node
//! serves them with nothing fetched from elsewhere.

/// One file of the dashboard.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its text.
    pub body: &'static str,
}

/// Content-Security-Policy of the dashboard: its own files and its own API only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

/// The dashboard file served at `path`, if any.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_str!("dashboard/index.html"),
        ),
        "/dashboard.js" => (
            "text/javascript; charset=utf-8",
            include_str!("dashboard/dashboard.js"),
        ),
        "/favicon.svg" => ("image/svg+xml", include_str!("dashboard/favicon.svg")),
        "/dashboard.css" => (
            "text/css; charset=utf-8",
            include_str!("dashboard/dashboard.css"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = asset("/").unwrap().body;
        assert!(page.contains(r#"src="dashboard.js""#));
        assert!(page.contains(r#"href="dashboard.css""#));
        for file in ["/", "/dashboard.js", "/dashboard.css", "/favicon.svg"] {
            // The SVG namespace is a name, never fetched.
            let body = asset(file)
                .unwrap()
                .body
                .replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{file}"
            );
            assert!(!body.contains("@import"), "{file}");
        }
        assert!(asset("/other").is_none());
    }
}
