//! Hardware-free logic of the Axolotl kernel: the boot ramdisk format, the kernel command line,
//! the physical frame bitmap, and the text grid and font of the framebuffer console. Everything
//! here is plain `no_std` code that the kernel links and that `cargo test -p klib` exercises on
//! the host; nothing here touches a register or an address.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod cmdline;
pub mod elf;
pub mod font;
pub mod frames;
pub mod manifest;
pub mod ramdisk;
pub mod textgrid;
