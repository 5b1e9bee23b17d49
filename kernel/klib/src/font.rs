//! The console font and how a glyph becomes pixels, shared by the kernel's framebuffer console
//! (`kernel/src/fbcon.rs`) and the host test that reads its screendumps back as text
//! (`tests/src/screen.rs`): both must shade and encode a glyph the same way, byte for byte.
//!
//! The font is Noto Sans Mono, pre-rasterised at 16 pixels by the `noto-sans-mono-bitmap` crate:
//! cells of [`CELL_WIDTH`] x [`CELL_HEIGHT`] pixels, one coverage byte (0 = background, 255 =
//! foreground) per pixel, printable ASCII only. The screen is black and the text is
//! [`FOREGROUND`], each pixel shaded by its coverage ([`shade`]).

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

const WEIGHT: FontWeight = FontWeight::Regular;
const HEIGHT: RasterHeight = RasterHeight::Size16;

/// Width of a character cell in pixels.
pub const CELL_WIDTH: usize = get_raster_width(WEIGHT, HEIGHT);
/// Height of a character cell (one text line) in pixels.
pub const CELL_HEIGHT: usize = HEIGHT.val();
/// Coverage bytes of one glyph: [`CELL_HEIGHT`] rows of [`CELL_WIDTH`], top row first.
pub const GLYPH_LEN: usize = CELL_WIDTH * CELL_HEIGHT;

/// The first and last byte the font draws (printable ASCII); [`glyph`] draws any other byte as
/// a blank.
pub const FIRST: u8 = 0x20;
/// See [`FIRST`].
pub const LAST: u8 = 0x7e;

/// A colour, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

/// The text colour: a light grey with a blue tint, distinct from the firmware's and the
/// bootloader's text so that a screendump shows whose text is on the screen.
pub const FOREGROUND: Rgb = Rgb {
    r: 0xd0,
    g: 0xd8,
    b: 0xe8,
};

/// The background colour.
pub const BACKGROUND: Rgb = Rgb { r: 0, g: 0, b: 0 };

/// The coverage bytes of `byte`'s glyph ([`GLYPH_LEN`] of them); blank for bytes outside
/// [`FIRST`]`..=`[`LAST`].
pub fn glyph(byte: u8) -> &'static [u8] {
    static BLANK: [u8; GLYPH_LEN] = [0; GLYPH_LEN];
    if !(FIRST..=LAST).contains(&byte) {
        return &BLANK;
    }
    match get_raster(byte as char, WEIGHT, HEIGHT) {
        Some(raster) if raster.pixels().len() == GLYPH_LEN => raster.pixels(),
        _ => &BLANK,
    }
}

/// The colour of a pixel with `coverage` (0–255) of `fg` over the black background, each channel
/// rounded to nearest.
pub const fn shade(fg: Rgb, coverage: u8) -> Rgb {
    const fn ch(c: u8, cov: u8) -> u8 {
        ((c as u32 * cov as u32 + 127) / 255) as u8
    }
    Rgb {
        r: ch(fg.r, coverage),
        g: ch(fg.g, coverage),
        b: ch(fg.b, coverage),
    }
}

/// How the bytes of one framebuffer pixel are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// Red, green, blue, then padding up to the pixel size.
    Rgb,
    /// Blue, green, red, then padding.
    Bgr,
    /// One grey byte, then padding.
    Grey,
}

/// Largest pixel size [`encode`] handles, in bytes.
pub const MAX_BYTES_PER_PIXEL: usize = 4;

/// Writes `c` as one pixel of `layout` into `out` (the pixel's bytes: 1 to
/// [`MAX_BYTES_PER_PIXEL`]); padding bytes are zero, and channels that do not fit are dropped.
pub fn encode(layout: PixelLayout, c: Rgb, out: &mut [u8]) {
    out.fill(0);
    let bytes = match layout {
        PixelLayout::Rgb => [c.r, c.g, c.b],
        PixelLayout::Bgr => [c.b, c.g, c.r],
        PixelLayout::Grey => [grey(c), 0, 0],
    };
    let n = out.len().min(3);
    out[..n].copy_from_slice(&bytes[..n]);
}

/// Luma of `c` (ITU-R BT.601 weights, in integers).
pub const fn grey(c: Rgb) -> u8 {
    ((c.r as u32 * 77 + c.g as u32 * 150 + c.b as u32 * 29) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_seven_by_sixteen_and_every_printable_byte_has_a_glyph() {
        assert_eq!((CELL_WIDTH, CELL_HEIGHT), (7, 16));
        for b in FIRST..=LAST {
            let g = glyph(b);
            assert_eq!(g.len(), GLYPH_LEN);
            assert_eq!(
                g.iter().any(|&c| c != 0),
                b != b' ',
                "glyph of {:?}",
                b as char
            );
        }
        assert!(glyph(b'\n').iter().all(|&c| c == 0));
        assert!(glyph(0xc3).iter().all(|&c| c == 0));
    }

    #[test]
    fn glyphs_of_different_bytes_differ() {
        // The screendump reader tells characters apart by their pixels.
        for a in FIRST..=LAST {
            for b in a + 1..=LAST {
                assert_ne!(glyph(a), glyph(b), "{:?} and {:?}", a as char, b as char);
            }
        }
    }

    #[test]
    fn shading_spans_background_to_foreground() {
        assert_eq!(shade(FOREGROUND, 0), BACKGROUND);
        assert_eq!(shade(FOREGROUND, 255), FOREGROUND);
        let half = shade(
            Rgb {
                r: 200,
                g: 100,
                b: 0,
            },
            128,
        );
        assert_eq!(
            half,
            Rgb {
                r: 100,
                g: 50,
                b: 0
            }
        );
    }

    #[test]
    fn pixels_encode_in_each_layout() {
        let c = Rgb { r: 1, g: 2, b: 3 };
        let mut px = [0xffu8; 4];
        encode(PixelLayout::Rgb, c, &mut px);
        assert_eq!(px, [1, 2, 3, 0]);
        encode(PixelLayout::Bgr, c, &mut px);
        assert_eq!(px, [3, 2, 1, 0]);
        let mut px3 = [0xffu8; 3];
        encode(PixelLayout::Bgr, c, &mut px3);
        assert_eq!(px3, [3, 2, 1]);
        let mut grey1 = [0xffu8; 1];
        encode(PixelLayout::Grey, FOREGROUND, &mut grey1);
        assert_eq!(grey1, [grey(FOREGROUND)]);
        assert_eq!(
            grey(Rgb {
                r: 255,
                g: 255,
                b: 255
            }),
            255
        );
        assert_eq!(grey(BACKGROUND), 0);
    }
}
