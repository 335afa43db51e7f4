//! Content types: what is stored, and how a download is served (inline or as an attachment).
//!
//! A browser that opens a media URL directly runs HTML, SVG and JavaScript in the origin of the
//! homeserver. So only the types of the spec's "serving inline content" list are served inline;
//! everything else is an attachment. Every media response also carries a sandboxing
//! `Content-Security-Policy` and `X-Content-Type-Options: nosniff` (see `api::client::media`).

/// Served when the uploader gave no usable content type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The content types a browser may show inline: the spec's list (client-server API, "Serving
/// inline content"), which is also Synapse's `INLINE_CONTENT_TYPES`.
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// The content type to store for an upload: the client's, if it is a plausible `type/subtype`
/// header value, else `application/octet-stream`.
pub fn sanitize(declared: Option<&str>) -> String {
    let Some(declared) = declared.map(str::trim) else {
        return OCTET_STREAM.to_owned();
    };
    let essence = essence(declared);
    let plausible = declared.len() <= 255
        && declared.bytes().all(|b| (b' '..=b'~').contains(&b))
        && essence.split_once('/').is_some_and(|(kind, sub)| is_token(kind) && is_token(sub));
    if plausible { declared.to_owned() } else { OCTET_STREAM.to_owned() }
}

/// `type/subtype` of a content type, lower-cased, without parameters.
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Whether content of this type may be served `inline`; otherwise it is an `attachment`.
pub fn is_inline_safe(content_type: &str) -> bool {
    INLINE_TYPES.contains(&essence(content_type).as_str())
}

/// A file name fit for a `Content-Disposition` header: control characters and path separators
/// removed, at most 255 bytes; `None` when nothing is left.
pub fn sanitize_filename(name: Option<&str>) -> Option<String> {
    let mut out = String::new();
    for c in name?.chars().filter(|c| !c.is_control() && *c != '/' && *c != '\\') {
        if out.len() + c.len_utf8() > 255 {
            break;
        }
        out.push(c);
    }
    let out = out.trim().to_owned();
    (!out.is_empty()).then_some(out)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_types_are_attachments() {
        for ct in [
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/HTML",
            "image/svg+xml",
            "application/javascript",
            "text/javascript",
            "application/xhtml+xml",
            "text/xml",
            "application/pdf",
            "application/octet-stream",
        ] {
            assert!(!is_inline_safe(ct), "{ct} must not be inline");
        }
    }

    #[test]
    fn media_types_are_inline() {
        for ct in ["image/png", "image/JPEG", "video/mp4", "text/plain; charset=utf-8", "audio/ogg"]
        {
            assert!(is_inline_safe(ct), "{ct} should be inline");
        }
    }

    #[test]
    fn declared_types_are_kept_when_plausible() {
        assert_eq!(sanitize(Some("image/png")), "image/png");
        assert_eq!(sanitize(Some(" text/plain; charset=utf-8 ")), "text/plain; charset=utf-8");
        assert_eq!(sanitize(None), OCTET_STREAM);
        assert_eq!(sanitize(Some("")), OCTET_STREAM);
        assert_eq!(sanitize(Some("png")), OCTET_STREAM);
        assert_eq!(sanitize(Some("image/png\r\nX-Evil: 1")), OCTET_STREAM);
        assert_eq!(sanitize(Some("image /png")), OCTET_STREAM);
    }

    #[test]
    fn file_names_lose_separators_and_controls() {
        assert_eq!(sanitize_filename(Some("../etc/passwd")).as_deref(), Some("..etcpasswd"));
        assert_eq!(sanitize_filename(Some("a\nb.txt")).as_deref(), Some("ab.txt"));
        assert_eq!(sanitize_filename(Some("  ")), None);
        assert_eq!(sanitize_filename(None), None);
        assert_eq!(sanitize_filename(Some(&"é".repeat(200))).map(|n| n.len()), Some(254));
    }
}
