//! The framebuffer console: the kernel log and the user console's output, drawn as text on the
//! screen the firmware set up, for machines without a serial port. Everything written to the
//! serial console ([`crate::serial::write_bytes`]) comes here too, and so does a panic message
//! when the console is free.
//!
//! The text logic — wrapping, scrolling, `\r`, backspace, tabs, dropping escape sequences — is
//! `klib::textgrid`, and the font and the shading of a glyph are `klib::font`, both tested on
//! the host. This file only turns cells into pixels: every glyph is shaded once, at start-up,
//! in the screen's own pixel format, so drawing a character is sixteen short copies. The grid
//! hands over only the cells whose character changed, so nothing is ever read back from the
//! framebuffer (slow on real hardware, where it is often uncached) and a scroll rewrites the
//! text, not the whole screen. Each write is drawn before it returns; the kernel log writes whole
//! lines.
//!
//! The framebuffer is the one the bootloader mapped (`BootInfo::framebuffer`) in the upper half,
//! which every process's page table shares, so the console draws from any context.

use bootloader_api::info::{FrameBuffer, PixelFormat};
use core::sync::atomic::{AtomicBool, Ordering};
use klib::font::{self, CELL_HEIGHT, CELL_WIDTH, GLYPH_LEN, MAX_BYTES_PER_PIXEL, PixelLayout};
use klib::textgrid::TextGrid;
use spin::Mutex;

/// Cells the grid can hold: enough for 7x16 cells on a 3840x2160 screen.
const GRID_CELLS: usize = 80 * 1024;
/// Glyphs in the font: printable ASCII.
const GLYPHS: usize = (font::LAST - font::FIRST + 1) as usize;
/// When the text reaches the bottom it scrolls by this fraction of the screen at once: each
/// scroll redraws most of the text, so scrolling line by line would cost a screenful of glyphs
/// per line (about 1 ms under QEMU's TCG, far more on hardware whose framebuffer is uncached).
const SCROLL_FRACTION: usize = 4;

/// The framebuffer and its geometry.
struct Screen {
    /// Every byte of the framebuffer.
    fb: &'static mut [u8],
    /// Bytes per pixel (1 to [`MAX_BYTES_PER_PIXEL`]).
    bpp: usize,
    /// Bytes from the start of one pixel line to the next.
    pitch: usize,
}

struct Console {
    /// `None` until [`init`] finds a framebuffer it can draw on.
    screen: Option<Screen>,
    grid: TextGrid<GRID_CELLS>,
    /// Every glyph shaded in the screen's pixel format: glyph after glyph, each [`CELL_HEIGHT`]
    /// lines of [`CELL_WIDTH`] pixels of `bpp` bytes.
    glyphs: [u8; GLYPHS * GLYPH_LEN * MAX_BYTES_PER_PIXEL],
}

/// The console; `READY` says whether it has a screen, so writers need not take the lock when it
/// has none.
static CONSOLE: Mutex<Console> = Mutex::new(Console {
    screen: None,
    grid: TextGrid::new(),
    glyphs: [0; GLYPHS * GLYPH_LEN * MAX_BYTES_PER_PIXEL],
});
static READY: AtomicBool = AtomicBool::new(false);

/// Takes over the bootloader's framebuffer, if there is one in a format we can draw: clears it
/// and starts showing the console there. Logs one line either way.
pub fn init(framebuffer: Option<FrameBuffer>) {
    let Some(framebuffer) = framebuffer else {
        log::info!("framebuffer console: the bootloader found no framebuffer");
        return;
    };
    let info = framebuffer.info();
    let layout = match info.pixel_format {
        PixelFormat::Rgb => Some(PixelLayout::Rgb),
        PixelFormat::Bgr => Some(PixelLayout::Bgr),
        PixelFormat::U8 => Some(PixelLayout::Grey),
        _ => None,
    };
    let bpp = info.bytes_per_pixel;
    let (Some(layout), 1..=MAX_BYTES_PER_PIXEL) = (layout, bpp) else {
        log::warn!(
            "framebuffer console: unsupported pixel format {:?} ({} bytes per pixel); the screen \
             stays as the bootloader left it",
            info.pixel_format,
            bpp
        );
        return;
    };
    let fb = framebuffer.into_buffer();
    let pitch = info.stride * bpp;
    // Lines that lie wholly inside the buffer (the bootloader's sizes should agree).
    let height = info.height.min(fb.len() / pitch.max(1));
    let width = info.width.min(info.stride);
    let (cols, rows) = {
        let mut console = CONSOLE.lock();
        let Console {
            screen,
            grid,
            glyphs,
        } = &mut *console;
        shade_glyphs(glyphs, layout, bpp);
        clear(&mut fb[..height * pitch]);
        grid.reset(width / CELL_WIDTH, height / CELL_HEIGHT, true);
        grid.set_scroll_step(grid.rows() / SCROLL_FRACTION);
        *screen = Some(Screen { fb, bpp, pitch });
        (grid.cols(), grid.rows())
    };
    READY.store(true, Ordering::Release);
    log::info!(
        "framebuffer console: {}x{} {:?} ({} bytes per pixel), {cols}x{rows} characters",
        info.width,
        info.height,
        info.pixel_format,
        bpp
    );
}

/// Shows `bytes` on the screen (a no-op without a framebuffer). Interrupts are held off while
/// the console is locked.
pub fn write_bytes(bytes: &[u8]) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    x86_64::instructions::interrupts::without_interrupts(|| CONSOLE.lock().write(bytes));
}

/// The panic path's way to the screen: gives up silently when the console is locked (perhaps by
/// the CPU that panicked, in the middle of drawing).
pub fn write_panic(bytes: &[u8]) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    if let Some(mut console) = CONSOLE.try_lock() {
        console.write(bytes);
    }
}

impl Console {
    fn write(&mut self, bytes: &[u8]) {
        let Console {
            screen,
            grid,
            glyphs,
        } = self;
        let Some(screen) = screen else { return };
        grid.write(bytes);
        let glyphs = &glyphs[..];
        match screen.bpp {
            1 => grid.flush(|r, c, b| screen.draw::<CELL_WIDTH>(glyphs, r, c, b)),
            2 => grid.flush(|r, c, b| screen.draw::<{ CELL_WIDTH * 2 }>(glyphs, r, c, b)),
            3 => grid.flush(|r, c, b| screen.draw::<{ CELL_WIDTH * 3 }>(glyphs, r, c, b)),
            _ => grid.flush(|r, c, b| screen.draw::<{ CELL_WIDTH * 4 }>(glyphs, r, c, b)),
        };
    }
}

impl Screen {
    /// Draws `byte` in the cell at `row`, `col`. `LINE` is the bytes of one line of a glyph
    /// (`CELL_WIDTH * bpp`): a constant, so each line is a few plain moves.
    fn draw<const LINE: usize>(&mut self, glyphs: &[u8], row: usize, col: usize, byte: u8) {
        let index = if (font::FIRST..=font::LAST).contains(&byte) {
            (byte - font::FIRST) as usize
        } else {
            0
        };
        let glyph = &glyphs[index * CELL_HEIGHT * LINE..][..CELL_HEIGHT * LINE];
        let mut at = row * CELL_HEIGHT * self.pitch + col * LINE;
        for line in glyph.as_chunks::<LINE>().0 {
            self.fb[at..at + LINE].copy_from_slice(line);
            at += self.pitch;
        }
    }
}

/// Fills `glyphs` with every glyph of the font shaded in the foreground colour and encoded as
/// `layout` pixels of `bpp` bytes.
fn shade_glyphs(glyphs: &mut [u8], layout: PixelLayout, bpp: usize) {
    // One encoded pixel per coverage value: 256 shadings instead of one per pixel of the font.
    let mut pixels = [[0u8; MAX_BYTES_PER_PIXEL]; 256];
    for (coverage, pixel) in pixels.iter_mut().enumerate() {
        let colour = font::shade(font::FOREGROUND, coverage as u8);
        font::encode(layout, colour, &mut pixel[..bpp]);
    }
    match bpp {
        1 => expand::<1>(glyphs, &pixels),
        2 => expand::<2>(glyphs, &pixels),
        3 => expand::<3>(glyphs, &pixels),
        _ => expand::<4>(glyphs, &pixels),
    }
}

/// Writes every glyph's pixels (`BPP` bytes each) from their coverage and the encoded pixel of
/// each coverage value.
fn expand<const BPP: usize>(glyphs: &mut [u8], pixels: &[[u8; MAX_BYTES_PER_PIXEL]; 256]) {
    for (i, out) in glyphs
        .chunks_exact_mut(GLYPH_LEN * BPP)
        .take(GLYPHS)
        .enumerate()
    {
        let coverage = font::glyph(font::FIRST + i as u8);
        for (pixel, &c) in out.as_chunks_mut::<BPP>().0.iter_mut().zip(coverage) {
            pixel.copy_from_slice(&pixels[c as usize][..BPP]);
        }
    }
}

/// Zeroes `bytes` with word-sized stores. They are volatile so the compiler cannot turn the loop
/// into `memset`, whose `rep stos` is slow under QEMU's TCG.
fn clear(bytes: &mut [u8]) {
    // Safety: any bit pattern is a valid `u64`; the middle part is aligned for it.
    let (head, words, tail) = unsafe { bytes.align_to_mut::<u64>() };
    head.fill(0);
    for w in words {
        // Safety: `w` is a valid, aligned, exclusive reference.
        unsafe { core::ptr::write_volatile(w, 0) };
    }
    tail.fill(0);
}
