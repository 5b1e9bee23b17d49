//! Reading the guest's screen back. QEMU's monitor command `screendump FILE` writes what the
//! display shows as a binary PPM (P6) image; [`Image::parse_ppm`] reads it, and
//! [`Image::text`] reads the kernel's framebuffer console back as text: the console draws
//! `klib::font` glyphs in a fixed grid from the top-left corner, shaded exactly as
//! `klib::font::shade` says, so every cell of a lossless screendump matches one glyph byte for
//! byte. [`check_console`] is the verdict of a scenario: the screen is not blank and shows the
//! lines it expects — which a screen still showing the firmware's or the bootloader's text
//! (other colours, other font) does not.

use std::collections::HashMap;

use klib::font::{self, CELL_HEIGHT, CELL_WIDTH, Rgb};

/// Character [`Image::text`] gives a cell that is neither blank nor a glyph of the console
/// (another font, another colour, a damaged cell).
pub const UNKNOWN_CELL: char = '\u{fffd}';

/// An image with 8-bit RGB pixels, row by row from the top left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` pixels of three bytes (red, green, blue).
    pub rgb: Vec<u8>,
}

impl Image {
    /// Reads a binary PPM (`P6`, maximum value 255), as QEMU's `screendump` writes it.
    pub fn parse_ppm(bytes: &[u8]) -> Result<Self, String> {
        let mut at = 0;
        let mut fields = [0usize; 3];
        let magic = header_word(bytes, &mut at).ok_or("empty file, not a PPM image")?;
        if magic != b"P6" {
            return Err(format!(
                "not a binary PPM image (magic {:?}, want \"P6\")",
                String::from_utf8_lossy(magic)
            ));
        }
        for (i, name) in ["width", "height", "maximum value"].iter().enumerate() {
            let word =
                header_word(bytes, &mut at).ok_or(format!("PPM header ends before {name}"))?;
            fields[i] = std::str::from_utf8(word)
                .ok()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| {
                    format!(
                        "PPM {name} is not a number: {:?}",
                        String::from_utf8_lossy(word)
                    )
                })?;
        }
        let [width, height, max] = fields;
        if max != 255 {
            return Err(format!("PPM maximum value {max}, only 255 is supported"));
        }
        // Exactly one whitespace byte separates the header from the pixels.
        at += 1;
        let len = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .ok_or("PPM size overflows")?;
        let pixels = bytes.get(at..).filter(|p| p.len() >= len).ok_or_else(|| {
            format!("PPM pixel data truncated: want {len} bytes for {width}x{height}")
        })?;
        Ok(Self {
            width,
            height,
            rgb: pixels[..len].to_vec(),
        })
    }

    /// Reads a PPM file.
    pub fn read_ppm(path: &std::path::Path) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse_ppm(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The colour of the pixel at (`x`, `y`).
    pub fn pixel(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        Rgb {
            r: self.rgb[i],
            g: self.rgb[i + 1],
            b: self.rgb[i + 2],
        }
    }

    /// The most common colour (black for an empty image).
    pub fn background(&self) -> Rgb {
        let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
        for p in self.rgb.as_chunks::<3>().0 {
            *counts.entry(*p).or_default() += 1;
        }
        let [r, g, b] = counts
            .into_iter()
            .max_by_key(|&(colour, n)| (n, colour))
            .map_or([0; 3], |(colour, _)| colour);
        Rgb { r, g, b }
    }

    /// Pixels whose colour is not the [`Image::background`].
    pub fn non_background_pixels(&self) -> usize {
        let bg = self.background();
        let bg = [bg.r, bg.g, bg.b];
        self.rgb
            .as_chunks::<3>()
            .0
            .iter()
            .filter(|p| **p != bg)
            .count()
    }

    /// The framebuffer console's text: one string per text row (trailing blanks trimmed), each
    /// cell the character whose glyph it shows exactly, a space where it is all background
    /// colour, [`UNKNOWN_CELL`] otherwise.
    pub fn text(&self) -> Vec<String> {
        let glyphs = glyph_table();
        let (cols, rows) = (self.width / CELL_WIDTH, self.height / CELL_HEIGHT);
        let mut cell = Vec::with_capacity(CELL_WIDTH * CELL_HEIGHT * 3);
        (0..rows)
            .map(|row| {
                let line: String = (0..cols)
                    .map(|col| {
                        cell.clear();
                        for y in row * CELL_HEIGHT..(row + 1) * CELL_HEIGHT {
                            let start = (y * self.width + col * CELL_WIDTH) * 3;
                            cell.extend_from_slice(&self.rgb[start..start + CELL_WIDTH * 3]);
                        }
                        glyphs.get(&cell).copied().unwrap_or(UNKNOWN_CELL)
                    })
                    .collect();
                line.trim_end().to_string()
            })
            .collect()
    }
}

/// One header word of a PPM, skipping whitespace and `#` comments; `at` ends just after it.
fn header_word<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    loop {
        match bytes.get(*at)? {
            b if b.is_ascii_whitespace() => *at += 1,
            b'#' => {
                while *bytes.get(*at)? != b'\n' {
                    *at += 1;
                }
            }
            _ => break,
        }
    }
    let start = *at;
    while bytes.get(*at).is_some_and(|b| !b.is_ascii_whitespace()) {
        *at += 1;
    }
    Some(&bytes[start..*at])
}

/// The RGB bytes of one cell showing `byte`, as the console draws it.
pub fn render_cell(byte: u8) -> Vec<u8> {
    font::glyph(byte)
        .iter()
        .flat_map(|&coverage| {
            let c = font::shade(font::FOREGROUND, coverage);
            [c.r, c.g, c.b]
        })
        .collect()
}

/// Every printable character by the pixels of its cell.
fn glyph_table() -> HashMap<Vec<u8>, char> {
    (font::FIRST..=font::LAST)
        .map(|b| (render_cell(b), b as char))
        .collect()
}

/// The verdict on a screendump of a booted guest: the screen is not blank, and each of `expect`
/// appears in a line of the console's text. `Ok` says how much text there was.
pub fn check_console(image: &Image, expect: &[&str]) -> Result<String, String> {
    let inked = image.non_background_pixels();
    // A single line of text inks a few hundred pixels.
    if inked < 200 {
        return Err(format!(
            "the screen is blank: {inked} of {}x{} pixels differ from the background",
            image.width, image.height
        ));
    }
    let text = image.text();
    let lines = text.iter().filter(|l| !l.is_empty()).count();
    let readable = text
        .iter()
        .filter(|l| !l.is_empty() && !l.contains(UNKNOWN_CELL))
        .count();
    for want in expect {
        if !text.iter().any(|l| l.contains(want)) {
            // The last lines read: the newest output, where a scenario's text would be.
            let mut shown: Vec<&str> = text
                .iter()
                .filter(|l| !l.is_empty() && !l.contains(UNKNOWN_CELL))
                .map(String::as_str)
                .rev()
                .take(8)
                .collect();
            shown.reverse();
            return Err(format!(
                "'{want}' is not on the screen ({inked} inked pixels, {readable} of {lines} \
                 text lines read as console text; the last of them: {shown:?})"
            ));
        }
    }
    Ok(format!(
        "{}x{} screen, {lines} lines of console text",
        image.width, image.height
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A screen of `width` x `height` pixels drawn as the kernel's console draws `lines`, in
    /// the given background colour.
    fn render(lines: &[&str], width: usize, height: usize) -> Image {
        let mut img = Image {
            width,
            height,
            rgb: vec![0; width * height * 3],
        };
        for (row, line) in lines.iter().enumerate() {
            for (col, byte) in line.bytes().enumerate() {
                let cell = render_cell(byte);
                for y in 0..CELL_HEIGHT {
                    let dst = ((row * CELL_HEIGHT + y) * width + col * CELL_WIDTH) * 3;
                    let src = y * CELL_WIDTH * 3;
                    img.rgb[dst..dst + CELL_WIDTH * 3]
                        .copy_from_slice(&cell[src..src + CELL_WIDTH * 3]);
                }
            }
        }
        img
    }

    fn to_ppm(img: &Image, header: &str) -> Vec<u8> {
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(&img.rgb);
        out
    }

    #[test]
    fn ppm_header_forms_and_errors() {
        let img = render(&["hi"], 20, 16);
        for header in [
            "P6\n20 16\n255\n",
            "P6 20 16 255 ",
            "P6\n# QEMU screendump\n20\t16\n#\n255\n",
        ] {
            assert_eq!(
                Image::parse_ppm(&to_ppm(&img, header)),
                Ok(img.clone()),
                "{header:?}"
            );
        }
        let bad = |bytes: &[u8], why: &str| {
            let e = Image::parse_ppm(bytes).unwrap_err();
            assert!(e.contains(why), "{e}");
        };
        bad(b"", "empty");
        bad(b"P3\n1 1\n255\n0 0 0\n", "not a binary PPM");
        bad(b"P6\n1 1\n65535\n\0\0\0\0\0\0", "maximum value 65535");
        bad(b"P6\n2 x\n255\n", "height is not a number");
        bad(b"P6\n2 2\n", "before maximum value");
        bad(b"P6\n2 2\n255\n\0\0\0", "truncated");
        bad(b"P6\n99999999999 99999999999\n255\n", "overflows");
    }

    #[test]
    fn text_reads_back_what_the_console_drew() {
        let lines = [
            "[cpu0] boot: 2 cpus online boot_ms=62",
            "",
            "axolotl> ps ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
        ];
        let img = render(&lines, 7 * 60 + 3, 16 * 4 + 5);
        let text = img.text();
        assert_eq!(text.len(), 4);
        assert_eq!(text[..3], lines);
        assert_eq!(text[3], "");
        let all: String = (font::FIRST..=font::LAST).map(|b| b as char).collect();
        assert_eq!(render(&[&all], 7 * 95, 16).text(), [all]);
    }

    #[test]
    fn foreign_text_is_not_console_text() {
        let mut img = render(&["ok here"], 7 * 10, 16 * 2);
        // Recolour the second cell: a glyph in another colour is not the console's.
        for y in 0..CELL_HEIGHT {
            for x in CELL_WIDTH..2 * CELL_WIDTH {
                let i = (y * img.width + x) * 3;
                img.rgb[i + 2] /= 2;
            }
        }
        assert_eq!(img.text()[0], format!("o{UNKNOWN_CELL} here"));
    }

    #[test]
    fn verdict_needs_ink_and_the_expected_lines() {
        let lines = [
            "[cpu0] framebuffer console: 1280x720",
            "[cpu0] boot: 2 cpus online boot_ms=5",
            "axolotl>",
        ];
        let img = render(&lines, 1280, 720);
        let ok = check_console(&img, &["boot: 2 cpus online", "axolotl>"]).unwrap();
        assert!(ok.contains("3 lines"), "{ok}");
        let e = check_console(&img, &["boot: 4 cpus online"]).unwrap_err();
        assert!(
            e.contains("'boot: 4 cpus online' is not on the screen"),
            "{e}"
        );
        assert!(e.contains("axolotl>"), "the message shows the screen: {e}");
        let blank = render(&[], 1280, 720);
        assert_eq!(blank.non_background_pixels(), 0);
        assert!(check_console(&blank, &[]).unwrap_err().contains("blank"));
    }

    #[test]
    fn background_is_the_most_common_colour() {
        let mut img = render(&["x"], 7, 16);
        assert_eq!(img.background(), Rgb { r: 0, g: 0, b: 0 });
        let inked = img.non_background_pixels();
        assert!(inked > 10 && inked < 7 * 16, "{inked}");
        img.rgb.iter_mut().for_each(|b| *b = 9);
        assert_eq!(img.background(), Rgb { r: 9, g: 9, b: 9 });
        assert_eq!(img.non_background_pixels(), 0);
    }
}
