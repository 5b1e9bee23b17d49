//! The legacy 8259 interrupt controllers: remapped away from the exception vectors and masked, so
//! a stray legacy interrupt can never look like a CPU exception. Interrupts come from the APICs.

use x86_64::instructions::port::Port;

pub fn disable() {
    // Safety: the standard 8259 initialisation sequence on the standard ports; afterwards every
    // line is masked.
    unsafe {
        let mut cmd1 = Port::<u8>::new(0x20);
        let mut data1 = Port::<u8>::new(0x21);
        let mut cmd2 = Port::<u8>::new(0xA0);
        let mut data2 = Port::<u8>::new(0xA1);
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(0xE0); // vectors 0xE0..0xE7
        data2.write(0xE8); // vectors 0xE8..0xEF
        data1.write(4);
        data2.write(2);
        data1.write(1);
        data2.write(1);
        data1.write(0xFF);
        data2.write(0xFF);
    }
}
