//! Thumbnails: which size serves a request, the crop and scale geometry, and the image work.
//!
//! Only the spec's recommended sizes are ever generated (32x32 and 96x96 crop, 320x240, 640x480
//! and 800x600 scale), so a client cannot make the server store one thumbnail per pixel size. A
//! request gets the smallest size of its method that is at least as large as asked, else the
//! largest of that method. Images are never enlarged.
//!
//! PNG, JPEG, GIF and WebP are decoded (the format is sniffed from the bytes, not taken from the
//! declared content type); images larger than `media.max_image_pixels` are refused before any
//! pixel is decoded. JPEG sources give JPEG thumbnails, the others PNG; an animated GIF or WebP
//! asked with `animated=true` gives an animated GIF.

use std::io::Cursor;

use image::{
    AnimationDecoder, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbaImage,
    codecs::{
        gif::{GifDecoder, GifEncoder, Repeat},
        jpeg::JpegEncoder,
        png::PngEncoder,
        webp::WebPDecoder,
    },
    imageops,
};

/// How a thumbnail is cut from its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exactly the asked aspect ratio: the centre of the image, cut to fit.
    Crop,
    /// The whole image, keeping its aspect ratio, within the asked box.
    Scale,
}

/// A thumbnail size the server generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Width of the box, in pixels.
    pub width: u32,
    /// Height of the box, in pixels.
    pub height: u32,
    /// Crop or scale.
    pub method: Method,
}

impl Size {
    /// The name of this size in storage keys, e.g. `96x96-crop`.
    pub fn key(&self, animated: bool) -> String {
        let method = match self.method {
            Method::Crop => "crop",
            Method::Scale => "scale",
        };
        format!(
            "{}x{}-{method}{}",
            self.width,
            self.height,
            if animated { "-animated" } else { "" }
        )
    }
}

/// The sizes generated: those the spec recommends.
pub const SIZES: [Size; 5] = [
    Size { width: 32, height: 32, method: Method::Crop },
    Size { width: 96, height: 96, method: Method::Crop },
    Size { width: 320, height: 240, method: Method::Scale },
    Size { width: 640, height: 480, method: Method::Scale },
    Size { width: 800, height: 600, method: Method::Scale },
];

/// Animated thumbnails are made only from images of at most this many pixels...
const MAX_ANIMATED_PIXELS: u64 = 2048 * 2048;
/// ...and at most this many frames; larger animations get a still thumbnail.
const MAX_ANIMATED_FRAMES: usize = 300;

/// The generated size that serves a request for `width` x `height` with `method`.
pub fn select(width: u32, height: u32, method: Method) -> Size {
    let candidates = SIZES.iter().filter(|s| s.method == method);
    candidates
        .clone()
        .filter(|s| s.width >= width && s.height >= height)
        .min_by_key(|s| u64::from(s.width) * u64::from(s.height))
        .or_else(|| candidates.max_by_key(|s| u64::from(s.width) * u64::from(s.height)))
        .copied()
        .unwrap_or(SIZES[0])
}

/// What to cut from the source (`x`, `y`, `width`, `height`) and the size to shrink it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Left edge of the kept region.
    pub x: u32,
    /// Top edge of the kept region.
    pub y: u32,
    /// Width of the kept region.
    pub width: u32,
    /// Height of the kept region.
    pub height: u32,
    /// Width of the thumbnail.
    pub out_width: u32,
    /// Height of the thumbnail.
    pub out_height: u32,
}

/// The geometry of a thumbnail of a `src_width` x `src_height` image. Never enlarges.
pub fn plan(src_width: u32, src_height: u32, size: Size) -> Plan {
    let (sw, sh) = (u64::from(src_width.max(1)), u64::from(src_height.max(1)));
    let (tw, th) = (u64::from(size.width.max(1)), u64::from(size.height.max(1)));
    match size.method {
        Method::Scale => {
            let (out_w, out_h) = if sw <= tw && sh <= th {
                (sw, sh)
            } else if sw * th >= sh * tw {
                // Wider than the box: the width decides.
                (tw, (sh * tw + sw / 2) / sw)
            } else {
                ((sw * th + sh / 2) / sh, th)
            };
            Plan {
                x: 0,
                y: 0,
                width: to_u32(sw),
                height: to_u32(sh),
                out_width: to_u32(out_w.max(1)),
                out_height: to_u32(out_h.max(1)),
            }
        }
        Method::Crop => {
            // The largest centred region with the box's aspect ratio.
            let (cw, ch) = if sw * th >= sh * tw {
                ((sh * tw / th).max(1), sh)
            } else {
                (sw, (sw * th / tw).max(1))
            };
            let (out_w, out_h) = if cw > tw { (tw, th) } else { (cw, ch) };
            Plan {
                x: to_u32((sw - cw) / 2),
                y: to_u32((sh - ch) / 2),
                width: to_u32(cw),
                height: to_u32(ch),
                out_width: to_u32(out_w),
                out_height: to_u32(out_h),
            }
        }
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Why no thumbnail could be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The bytes are not an image of a supported format.
    #[error("the media is not an image the server can thumbnail")]
    Unsupported,
    /// The image is larger than `media.max_image_pixels`.
    #[error("the image is too large to thumbnail")]
    TooLarge,
    /// The image could not be decoded or encoded.
    #[error("the image could not be processed: {0}")]
    Image(#[from] image::ImageError),
}

/// A generated thumbnail.
#[derive(Debug)]
pub struct Generated {
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// `image/png`, `image/jpeg` or `image/gif`.
    pub content_type: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Makes a thumbnail of `source` (the bytes of an uploaded file).
pub fn generate(
    source: &[u8],
    size: Size,
    animated: bool,
    max_pixels: u64,
) -> Result<Generated, ThumbnailError> {
    let reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Image(e.into()))?;
    let format = reader.format().ok_or(ThumbnailError::Unsupported)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(ThumbnailError::Unsupported);
    }
    if animated
        && matches!(format, ImageFormat::Gif | ImageFormat::WebP)
        && let Some(generated) = animated_thumbnail(source, format, size, max_pixels)?
    {
        return Ok(generated);
    }
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ThumbnailError::TooLarge);
    }
    decoder.set_limits(limits(max_pixels))?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    let plan = plan(image.width(), image.height(), size);
    let thumb = shrink(&image, plan);
    let mut bytes = Vec::new();
    let content_type = if format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, 85))?;
        "image/jpeg"
    } else {
        thumb.write_with_encoder(PngEncoder::new(&mut bytes))?;
        "image/png"
    };
    Ok(Generated { bytes, content_type, width: thumb.width(), height: thumb.height() })
}

fn shrink(image: &DynamicImage, plan: Plan) -> DynamicImage {
    let region = image.crop_imm(plan.x, plan.y, plan.width, plan.height);
    if (plan.out_width, plan.out_height) == (plan.width, plan.height) {
        region
    } else {
        region.resize_exact(plan.out_width, plan.out_height, imageops::FilterType::Triangle)
    }
}

fn limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    // Room for the RGBA pixels plus the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(64 << 20));
    limits
}

/// An animated GIF thumbnail, or `None` when the source is still or too large to animate (the
/// caller then makes a still one).
fn animated_thumbnail(
    source: &[u8],
    format: ImageFormat,
    size: Size,
    max_pixels: u64,
) -> Result<Option<Generated>, ThumbnailError> {
    let frames = match format {
        ImageFormat::Gif => {
            let mut decoder = GifDecoder::new(Cursor::new(source))?;
            if !fits_animation(decoder.dimensions(), max_pixels) {
                return Ok(None);
            }
            decoder.set_limits(limits(max_pixels))?;
            decoder.into_frames()
        }
        ImageFormat::WebP => {
            let mut decoder = WebPDecoder::new(Cursor::new(source))?;
            if !decoder.has_animation() || !fits_animation(decoder.dimensions(), max_pixels) {
                return Ok(None);
            }
            decoder.set_limits(limits(max_pixels))?;
            decoder.into_frames()
        }
        _ => return Ok(None),
    };
    let mut out = Vec::new();
    for frame in frames.take(MAX_ANIMATED_FRAMES + 1) {
        out.push(frame?);
    }
    if out.len() < 2 || out.len() > MAX_ANIMATED_FRAMES {
        return Ok(None);
    }
    let (src_w, src_h) = out[0].buffer().dimensions();
    let plan = plan(src_w, src_h, size);
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        for frame in out {
            let delay = frame.delay();
            let image = DynamicImage::ImageRgba8(frame.into_buffer());
            let small: RgbaImage = shrink(&image, plan).to_rgba8();
            encoder.encode_frame(image::Frame::from_parts(small, 0, 0, delay))?;
        }
    }
    Ok(Some(Generated {
        bytes,
        content_type: "image/gif",
        width: plan.out_width,
        height: plan.out_height,
    }))
}

fn fits_animation((width, height): (u32, u32), max_pixels: u64) -> bool {
    let pixels = u64::from(width) * u64::from(height);
    pixels <= max_pixels && pixels <= MAX_ANIMATED_PIXELS
}

#[cfg(test)]
mod tests {
    use super::*;

    const CROP_96: Size = Size { width: 96, height: 96, method: Method::Crop };
    const SCALE_320: Size = Size { width: 320, height: 240, method: Method::Scale };

    #[test]
    fn selection_takes_the_smallest_size_at_least_as_large() {
        assert_eq!(select(32, 32, Method::Crop), SIZES[0]);
        assert_eq!(select(33, 20, Method::Crop), SIZES[1]);
        assert_eq!(
            select(500, 500, Method::Crop),
            SIZES[1],
            "largest crop when none is large enough"
        );
        assert_eq!(select(96, 96, Method::Scale), SIZES[2]);
        assert_eq!(select(321, 100, Method::Scale), SIZES[3]);
        assert_eq!(select(4000, 4000, Method::Scale), SIZES[4]);
    }

    #[test]
    fn scale_keeps_the_aspect_ratio_inside_the_box() {
        let p = plan(1000, 500, SCALE_320);
        assert_eq!((p.out_width, p.out_height), (320, 160));
        assert_eq!((p.x, p.y, p.width, p.height), (0, 0, 1000, 500));
        let p = plan(300, 900, SCALE_320);
        assert_eq!((p.out_width, p.out_height), (80, 240));
    }

    #[test]
    fn scale_never_enlarges() {
        let p = plan(100, 50, SCALE_320);
        assert_eq!((p.out_width, p.out_height), (100, 50));
    }

    #[test]
    fn crop_cuts_the_centre_to_the_asked_ratio() {
        let p = plan(400, 200, CROP_96);
        assert_eq!((p.x, p.y, p.width, p.height), (100, 0, 200, 200));
        assert_eq!((p.out_width, p.out_height), (96, 96));
        let p = plan(200, 600, Size { width: 320, height: 240, method: Method::Crop });
        assert_eq!((p.x, p.y, p.width, p.height), (0, 225, 200, 150));
        assert_eq!((p.out_width, p.out_height), (200, 150), "smaller than the box: not enlarged");
    }

    #[test]
    fn degenerate_images_give_one_pixel_at_least() {
        let p = plan(10_000, 1, SCALE_320);
        assert_eq!((p.out_width, p.out_height), (320, 1));
        let p = plan(1, 10_000, CROP_96);
        assert_eq!((p.width, p.height), (1, 1));
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image =
            RgbaImage::from_fn(width, height, |x, y| image::Rgba([x as u8, y as u8, 0, 255]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgba8(image)
            .write_with_encoder(PngEncoder::new(&mut bytes))
            .expect("encode");
        bytes
    }

    #[test]
    fn generates_a_png_of_the_planned_size() {
        let out = generate(&png(640, 320), SCALE_320, false, 1 << 25).expect("thumbnail");
        assert_eq!((out.width, out.height, out.content_type), (320, 160, "image/png"));
        let decoded = image::load_from_memory(&out.bytes).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (320, 160));
    }

    #[test]
    fn refuses_garbage_and_oversized_images() {
        assert!(matches!(
            generate(b"not an image", CROP_96, false, 1 << 25),
            Err(ThumbnailError::Unsupported)
        ));
        let mut corrupt = png(64, 64);
        corrupt.truncate(60);
        assert!(generate(&corrupt, CROP_96, false, 1 << 25).is_err());
        assert!(matches!(
            generate(&png(64, 64), CROP_96, false, 1000),
            Err(ThumbnailError::TooLarge)
        ));
    }
}
