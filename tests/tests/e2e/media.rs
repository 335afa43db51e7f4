//! The media repository: uploads, authenticated downloads, thumbnails, limits, safe serving.

use std::io::Cursor;

use image::{
    AnimationDecoder, DynamicImage, ImageFormat, RgbaImage,
    codecs::gif::{GifDecoder, GifEncoder, Repeat},
};
use relais_tests::{Client, TestServer};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A raw media response.
struct Fetched {
    status: u16,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// `Content-Disposition` without quotes (ruma quotes file names only when needed).
    fn disposition(&self) -> String {
        self.header("content-disposition").replace('"', "")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.status, 200, "expected 200: {}", self.json());
        self
    }

    #[track_caller]
    fn err(&self, status: u16, errcode: &str) {
        assert_eq!(self.status, status, "unexpected status: {}", self.json());
        assert_eq!(self.json()["errcode"], errcode, "unexpected errcode: {}", self.json());
    }
}

async fn send(
    client: &Client,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Fetched {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path}", client.url)).body(body);
    if let Some(token) = &client.token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body").to_vec();
    Fetched { status, headers, bytes }
}

async fn get(client: &Client, path: &str) -> Fetched {
    send(client, reqwest::Method::GET, path, None, Vec::new()).await
}

/// Uploads and returns the raw answer.
async fn try_upload(
    client: &Client,
    content_type: &str,
    filename: Option<&str>,
    bytes: Vec<u8>,
) -> Fetched {
    let path = match filename {
        Some(name) => format!("/_matrix/media/v3/upload?filename={name}"),
        None => "/_matrix/media/v3/upload".to_owned(),
    };
    send(client, reqwest::Method::POST, &path, Some(content_type), bytes).await
}

/// Uploads and returns `server/mediaId` of the content URI.
async fn upload(
    client: &Client,
    content_type: &str,
    filename: Option<&str>,
    bytes: Vec<u8>,
) -> String {
    let answer = try_upload(client, content_type, filename, bytes).await.ok().json();
    let uri = answer["content_uri"].as_str().expect("content_uri");
    uri.strip_prefix("mxc://").expect("mxc URI").to_owned()
}

/// Sends the headers of an upload of `length` bytes, no body, and returns what the server answers.
async fn headers_only_upload(client: &Client, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = client.url.strip_prefix("http://").expect("http URL");
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let token = client.token.as_deref().expect("token");
    let head = format!(
        "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send headers");
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await;
    assert!(read.is_ok(), "no answer before the body was sent");
    String::from_utf8_lossy(&answer).into_owned()
}

fn download_path(media: &str) -> String {
    format!("/_matrix/client/v1/media/download/{media}")
}

fn thumbnail_path(media: &str, width: u32, height: u32, method: &str) -> String {
    format!(
        "/_matrix/client/v1/media/thumbnail/{media}?width={width}&height={height}&method={method}"
    )
}

fn pattern(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 251) as u8, (y % 241) as u8, ((x + y) % 256) as u8, 255])
    })
}

fn encode(image: RgbaImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let image = if format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(image).to_rgb8())
    } else {
        DynamicImage::ImageRgba8(image)
    };
    image.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

fn animated_gif(width: u32, height: u32, frames: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).expect("repeat");
        for i in 0..frames {
            let frame = RgbaImage::from_fn(width, height, |x, _| {
                image::Rgba([(x as usize * 3 + i * 80) as u8, 0, 0, 255])
            });
            encoder.encode_frame(image::Frame::new(frame)).expect("frame");
        }
    }
    out
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("thumbnail decodes");
    (image.width(), image.height())
}

#[tokio::test]
async fn upload_and_download_round_trip() {
    let server = TestServer::start();
    let alice = server.register("alice").await;

    let config = get(&alice, "/_matrix/client/v1/media/config").await.ok().json();
    assert_eq!(config["m.upload.size"], 50 * 1024 * 1024);

    let small = upload(&alice, "text/plain", Some("hello.txt"), b"hello, media".to_vec()).await;
    assert!(small.starts_with("localhost/"), "{small}");
    let fetched = get(&alice, &download_path(&small)).await.ok();
    assert_eq!(fetched.bytes, b"hello, media");
    assert_eq!(fetched.header("content-type"), "text/plain");
    assert_eq!(fetched.disposition(), "inline; filename=hello.txt");
    let renamed = get(&alice, &format!("{}/other.txt", download_path(&small))).await.ok();
    assert_eq!(renamed.bytes, b"hello, media");
    assert_eq!(renamed.disposition(), "inline; filename=other.txt");

    // Several megabytes, byte for byte, readable by another user.
    let big: Vec<u8> =
        (0..6 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let big_media = upload(&alice, "application/octet-stream", None, big.clone()).await;
    let bob = server.register("bob").await;
    let fetched = get(&bob, &download_path(&big_media)).await.ok();
    assert_eq!(fetched.bytes.len(), big.len());
    assert!(fetched.bytes == big, "the downloaded bytes differ from the upload");
    assert_eq!(fetched.header("content-type"), "application/octet-stream");
    assert_eq!(fetched.disposition(), "attachment");

    // An empty upload is a valid (empty) file.
    let empty = upload(&alice, "text/plain", None, Vec::new()).await;
    assert!(get(&alice, &download_path(&empty)).await.ok().bytes.is_empty());
}

#[tokio::test]
async fn thumbnails_of_each_format_have_the_asked_dimensions() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let cases = [
        ("image/png", encode(pattern(800, 400), ImageFormat::Png), "image/png"),
        ("image/jpeg", encode(pattern(640, 480), ImageFormat::Jpeg), "image/jpeg"),
        ("image/gif", encode(pattern(400, 400), ImageFormat::Gif), "image/png"),
        ("image/webp", encode(pattern(500, 250), ImageFormat::WebP), "image/png"),
    ];
    for (content_type, bytes, thumbnail_type) in cases {
        let source = image::load_from_memory(&bytes).expect("test image");
        let (w, h) = (source.width(), source.height());
        let media = upload(&alice, content_type, None, bytes).await;

        let crop = get(&alice, &thumbnail_path(&media, 96, 96, "crop")).await.ok();
        assert_eq!(crop.header("content-type"), thumbnail_type, "{content_type}");
        assert!(crop.header("content-disposition").starts_with("inline"), "{content_type}");
        assert_eq!(dimensions(&crop.bytes), (96, 96), "{content_type} crop");

        let scale = get(&alice, &thumbnail_path(&media, 320, 240, "scale")).await.ok();
        let expected = if w * 240 >= h * 320 {
            (320, (h * 320 + w / 2) / w)
        } else {
            ((w * 240 + h / 2) / h, 240)
        };
        assert_eq!(dimensions(&scale.bytes), expected, "{content_type} scale of {w}x{h}");

        // Generated once: asking again gives the stored bytes.
        let again = get(&alice, &thumbnail_path(&media, 96, 96, "crop")).await.ok();
        assert!(again.bytes == crop.bytes, "{content_type}: thumbnail regenerated differently");
    }
}

#[tokio::test]
async fn animated_thumbnails_when_asked() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let media = upload(&alice, "image/gif", None, animated_gif(200, 100, 3)).await;

    let still = get(&alice, &thumbnail_path(&media, 96, 96, "crop")).await.ok();
    assert_eq!(still.header("content-type"), "image/png");

    let animated =
        get(&alice, &format!("{}&animated=true", thumbnail_path(&media, 96, 96, "crop")))
            .await
            .ok();
    assert_eq!(animated.header("content-type"), "image/gif");
    let frames = GifDecoder::new(Cursor::new(animated.bytes)).expect("gif").into_frames().count();
    assert_eq!(frames, 3);
}

#[tokio::test]
async fn authenticated_endpoints_require_a_token() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let media = upload(&alice, "image/png", None, encode(pattern(64, 64), ImageFormat::Png)).await;
    let anonymous = server.client();
    for path in [
        download_path(&media),
        format!("{}/name.png", download_path(&media)),
        thumbnail_path(&media, 32, 32, "crop"),
        "/_matrix/client/v1/media/config".to_owned(),
    ] {
        get(&anonymous, &path).await.err(401, "M_MISSING_TOKEN");
    }
    try_upload(&anonymous, "text/plain", None, b"x".to_vec()).await.err(401, "M_MISSING_TOKEN");
    let mut forged = server.client();
    forged.token = Some("not-a-token".into());
    get(&forged, &download_path(&media)).await.err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn upload_size_limit_and_quota() {
    let server = TestServer::start_with(&[
        ("RELAIS_MEDIA__MAX_UPLOAD_BYTES", "100000"),
        ("RELAIS_MEDIA__USER_QUOTA_BYTES", "150000"),
    ]);
    let alice = server.register("alice").await;
    assert_eq!(
        get(&alice, "/_matrix/client/v1/media/config").await.ok().json()["m.upload.size"],
        100_000
    );

    try_upload(&alice, "application/octet-stream", None, vec![7; 100_001])
        .await
        .err(413, "M_TOO_LARGE");
    // Far over the limit: refused from its Content-Length before any byte of the body is sent.
    let answer = headers_only_upload(&alice, 64 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("M_TOO_LARGE"), "{answer}");
    upload(&alice, "application/octet-stream", None, vec![1; 100_000]).await;
    try_upload(&alice, "application/octet-stream", None, vec![2; 60_000])
        .await
        .err(403, "M_RESOURCE_LIMIT_EXCEEDED");
    upload(&alice, "application/octet-stream", None, vec![3; 50_000]).await;
    try_upload(&alice, "application/octet-stream", None, vec![4; 1])
        .await
        .err(403, "M_RESOURCE_LIMIT_EXCEEDED");

    // The quota is per user.
    let bob = server.register("bob").await;
    upload(&bob, "application/octet-stream", None, vec![5; 100_000]).await;
}

#[tokio::test]
async fn dangerous_types_are_served_as_sandboxed_attachments() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let cases: [(&str, &[u8]); 4] = [
        ("text/html", b"<html><script>alert(1)</script></html>"),
        (
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        ),
        ("application/javascript", b"alert(1)"),
        ("application/pdf", b"%PDF-1.4"),
    ];
    for (content_type, bytes) in cases {
        let media = upload(&alice, content_type, Some("evil"), bytes.to_vec()).await;
        let fetched = get(&alice, &download_path(&media)).await.ok();
        assert_eq!(fetched.bytes, bytes);
        assert_eq!(fetched.header("content-type"), content_type);
        assert_eq!(fetched.disposition(), "attachment; filename=evil", "{content_type}");
        let csp = fetched.header("content-security-policy");
        assert!(
            csp.contains("sandbox") && csp.contains("default-src 'none'"),
            "{content_type}: {csp}"
        );
        assert_eq!(fetched.header("x-content-type-options"), "nosniff");
        assert_eq!(fetched.header("cross-origin-resource-policy"), "cross-origin");
    }
    // A malformed content type is served as a download of bytes.
    let media = upload(&alice, "nonsense", None, b"?".to_vec()).await;
    assert_eq!(
        get(&alice, &download_path(&media)).await.ok().header("content-type"),
        "application/octet-stream"
    );
}

#[tokio::test]
async fn asynchronous_upload_flow() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let created = send(
        &alice,
        reqwest::Method::POST,
        "/_matrix/media/v1/create",
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await
    .ok()
    .json();
    assert!(created["unused_expires_at"].as_u64().is_some(), "{created}");
    let media = created["content_uri"]
        .as_str()
        .expect("content_uri")
        .strip_prefix("mxc://")
        .expect("mxc")
        .to_owned();

    get(&alice, &format!("{}?timeout_ms=100", download_path(&media)))
        .await
        .err(504, "M_NOT_YET_UPLOADED");

    // A download started before the upload gets the content when it arrives.
    let waiting = {
        let (alice, path) = (alice.clone(), format!("{}?timeout_ms=10000", download_path(&media)));
        tokio::spawn(async move { get(&alice, &path).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let bob = server.register("bob").await;
    let upload_path = format!("/_matrix/media/v3/upload/{media}?filename=late.txt");
    send(&bob, reqwest::Method::PUT, &upload_path, Some("text/plain"), b"x".to_vec())
        .await
        .err(403, "M_FORBIDDEN");
    let done = send(
        &alice,
        reqwest::Method::PUT,
        &upload_path,
        Some("text/plain"),
        b"arrived late".to_vec(),
    )
    .await
    .ok();
    assert_eq!(done.json(), serde_json::json!({}));
    let fetched = waiting.await.expect("join").ok();
    assert_eq!(fetched.bytes, b"arrived late");
    assert_eq!(fetched.disposition(), "inline; filename=late.txt");

    send(&alice, reqwest::Method::PUT, &upload_path, Some("text/plain"), b"again".to_vec())
        .await
        .err(409, "M_CANNOT_OVERWRITE_MEDIA");
    send(
        &alice,
        reqwest::Method::PUT,
        "/_matrix/media/v3/upload/localhost/neverCreated",
        Some("text/plain"),
        b"x".to_vec(),
    )
    .await
    .err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn media_and_thumbnails_survive_a_restart() {
    let mut server = TestServer::start();
    let alice = server.register("alice").await;
    let bytes = encode(pattern(300, 200), ImageFormat::Png);
    let media = upload(&alice, "image/png", Some("photo.png"), bytes.clone()).await;
    let thumb = get(&alice, &thumbnail_path(&media, 32, 32, "crop")).await.ok().bytes;

    server.restart();
    let mut alice = alice;
    alice.url = server.url.clone();
    let fetched = get(&alice, &download_path(&media)).await.ok();
    assert!(fetched.bytes == bytes);
    assert_eq!(fetched.disposition(), "inline; filename=photo.png");
    assert!(get(&alice, &thumbnail_path(&media, 32, 32, "crop")).await.ok().bytes == thumb);
}

#[tokio::test]
async fn corrupt_image_has_no_thumbnail_but_downloads() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let mut bytes = encode(pattern(100, 100), ImageFormat::Png);
    bytes.truncate(bytes.len() / 2);
    let media = upload(&alice, "image/png", None, bytes.clone()).await;
    get(&alice, &thumbnail_path(&media, 96, 96, "crop")).await.err(400, "M_UNKNOWN");
    assert!(get(&alice, &download_path(&media)).await.ok().bytes == bytes);

    let text = upload(&alice, "text/plain", None, b"not an image".to_vec()).await;
    get(&alice, &thumbnail_path(&text, 96, 96, "crop")).await.err(400, "M_UNKNOWN");
    get(&alice, &thumbnail_path(&text, 0, 96, "crop")).await.err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn unknown_media_is_not_found() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    for media in ["localhost/doesNotExist", "elsewhere.example/abc", "localhost/bad%21id"] {
        get(&alice, &download_path(media)).await.err(404, "M_NOT_FOUND");
        get(&alice, &thumbnail_path(media, 32, 32, "crop")).await.err(404, "M_NOT_FOUND");
    }
    get(&alice, "/_matrix/client/v1/media/preview_url?url=https://example.org")
        .await
        .err(404, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn legacy_endpoints_follow_the_freeze() {
    // Without the freeze, the legacy unauthenticated endpoints serve everything.
    let open = TestServer::start_with(&[("RELAIS_MEDIA__FREEZE_UNAUTHENTICATED", "false")]);
    let alice = open.register("alice").await;
    let media = upload(&alice, "image/png", None, encode(pattern(64, 64), ImageFormat::Png)).await;
    let anonymous = open.client();
    assert_eq!(
        get(&anonymous, "/_matrix/media/v3/config").await.status,
        401,
        "config needs a token"
    );
    get(&anonymous, &format!("/_matrix/media/v3/download/{media}")).await.ok();
    get(&anonymous, &format!("/_matrix/media/v3/download/{media}/named.png")).await.ok();
    get(&anonymous, &format!("/_matrix/media/v3/thumbnail/{media}?width=32&height=32")).await.ok();

    // With the freeze (the default), media uploaded since are served only with authentication.
    // (That media from before the freeze stays public is a unit test of the service.)
    let frozen = TestServer::start();
    let alice = frozen.register("alice").await;
    let media = upload(&alice, "image/png", None, encode(pattern(64, 64), ImageFormat::Png)).await;
    let anonymous = frozen.client();
    get(&anonymous, &format!("/_matrix/media/v3/download/{media}")).await.err(404, "M_NOT_FOUND");
    get(&anonymous, &format!("/_matrix/media/v3/thumbnail/{media}?width=32&height=32"))
        .await
        .err(404, "M_NOT_FOUND");
    get(&alice, &format!("/_matrix/media/v3/download/{media}")).await.err(404, "M_NOT_FOUND");
    get(&alice, &download_path(&media)).await.ok();
    get(&alice, "/_matrix/media/v3/config").await.ok();
}
