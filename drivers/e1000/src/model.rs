//! The Intel Ethernet parts the driver knows by PCI id, and which of them it drives.
//!
//! Two kinds of part share the e1000 register set:
//!
//! - discrete controllers with their PHY inside and an EEPROM behind `EERD`: the 82540EM,
//!   82545EM (PCI) and 82574L (PCIe). The driver supports these (QEMU emulates all three);
//! - the LAN controllers integrated into Intel's chipsets since the 6 Series, paired with an
//!   external PHY: the 82579LM/V, I217-LM/V, I218-LM/V and I219-LM/V (the "e1000e" PCH parts).
//!   Their MAC lives in the Platform Controller Hub (PCH) and talks to the PHY over a dedicated
//!   link (or SMBus while the system sleeps); the PHY is reached only through `MDIC`, the NVM is
//!   a region of the platform's SPI flash (not an EEPROM behind `EERD`), and the Management
//!   Engine (ME) may share the PHY. Bringing one up takes steps this driver does not have: the
//!   software/firmware semaphore (`EXTCNF_CTRL`), a PHY reset unless the ME blocks it, the
//!   `LANPHYPC` toggle that takes the PHY out of SMBus mode, per-generation PHY workarounds over
//!   `MDIC`, leaving the PHY's ultra-low-power state (Lynx Point-LP and later) and, from the
//!   I219 on, flushing the descriptor rings before a reset. They are recognised, so `lspci`
//!   names them and the driver refuses them with a reason, but not driven.
//!
//! A part is named by its PCI device id; [`Model::from_ids`] knows every id below and nothing
//! else, and [`Model::supported`] says whether the driver may start on it.

use core::fmt;

/// Intel's PCI vendor id.
pub const VENDOR_INTEL: u16 = 0x8086;

/// A part of the e1000 family, as a datasheet names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// 82540EM, PCI (QEMU's `e1000`).
    I82540EM,
    /// 82545EM, PCI-X (QEMU's `e1000-82545em`).
    I82545EM,
    /// 82574L, PCIe (QEMU's `e1000e`).
    I82574L,
    /// 82579LM, with the 6 and 7 Series chipsets (Intel AMT capable).
    I82579LM,
    /// 82579V, with the 6 and 7 Series chipsets.
    I82579V,
    /// I217-LM, with the 8 Series (Lynx Point).
    I217LM,
    /// I217-V, with the 8 Series (Lynx Point).
    I217V,
    /// I218-LM, with Lynx Point(-LP) and Wildcat Point-LP.
    I218LM,
    /// I218-V, with Lynx Point(-LP) and Wildcat Point-LP.
    I218V,
    /// I219-LM, with the 100 Series (Sunrise Point) and every chipset since.
    I219LM,
    /// I219-V, with the 100 Series (Sunrise Point) and every chipset since.
    I219V,
}

impl Part {
    /// The part's name, as the logs and `lspci` use it.
    pub fn name(self) -> &'static str {
        match self {
            Part::I82540EM => "82540EM",
            Part::I82545EM => "82545EM",
            Part::I82574L => "82574L",
            Part::I82579LM => "82579LM",
            Part::I82579V => "82579V",
            Part::I217LM => "I217-LM",
            Part::I217V => "I217-V",
            Part::I218LM => "I218-LM",
            Part::I218V => "I218-V",
            Part::I219LM => "I219-LM",
            Part::I219V => "I219-V",
        }
    }

    /// Whether the driver brings this part up.
    pub fn supported(self) -> bool {
        matches!(self, Part::I82540EM | Part::I82545EM | Part::I82574L)
    }

    /// Why the driver does not drive this part (`None` for the supported ones).
    pub fn unsupported_reason(self) -> Option<&'static str> {
        Some(match self {
            Part::I82540EM | Part::I82545EM | Part::I82574L => return None,
            Part::I82579LM | Part::I82579V => {
                "a chipset-integrated (PCH) LAN part: its PHY sits behind MDIC and its NVM in the \
                 SPI flash, and bring-up needs the software/firmware semaphore, PHY reset and \
                 workarounds and the LANPHYPC toggle, which this driver does not do"
            }
            Part::I217LM | Part::I217V | Part::I218LM | Part::I218V => {
                "a chipset-integrated (PCH) LAN part: its PHY sits behind MDIC and its NVM in the \
                 SPI flash, and bring-up needs the software/firmware semaphore, PHY reset and \
                 workarounds, the LANPHYPC toggle and (on -LP chipsets) the exit from the PHY's \
                 ultra-low-power state, which this driver does not do"
            }
            Part::I219LM | Part::I219V => {
                "a chipset-integrated (PCH) LAN part: its PHY sits behind MDIC and its NVM in the \
                 SPI flash, and bring-up needs the software/firmware semaphore, PHY reset and \
                 workarounds, the LANPHYPC toggle, the exit from the PHY's ultra-low-power state \
                 and a descriptor ring flush before every reset, which this driver does not do"
            }
        })
    }
}

/// The chipset (Platform Controller Hub) a PCH LAN part comes with, as e1000e-class drivers key
/// their quirks on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pch {
    /// Not a chipset part (a discrete controller).
    None,
    /// 6/7 Series, Cougar Point and Panther Point (82579).
    CougarPoint,
    /// 8 Series, Lynx Point (I217; I218-LM2/V2).
    LynxPoint,
    /// Lynx Point-LP (I218-LM/V).
    LynxPointLp,
    /// 9 Series, Wildcat Point-LP (I218-LM3/V3).
    WildcatPoint,
    /// 100/200 Series, Sunrise Point and Union Point (I219 (1), (2), (4), (5)).
    SunrisePoint,
    /// C620, Lewisburg (I219-LM (3)).
    Lewisburg,
    /// 300 Series, Cannon Point (I219 (6), (7)).
    CannonPoint,
    /// Ice Point (I219 (8), (9)).
    IcePoint,
    /// 400 Series, Comet Point (I219 (10) to (12)).
    CometPoint,
    /// 500 Series, Tiger Point (I219 (13) to (15)).
    TigerPoint,
    /// 600 Series, Alder Point (I219 (16), (17), (19)).
    AlderPoint,
    /// Meteor Point (I219 (18)).
    MeteorPoint,
    /// Lunar Lake (I219 (20), (21)).
    LunarLake,
    /// 700 Series, Raptor Point (I219 (22), (23)).
    RaptorPoint,
    /// Arrow Lake (I219 (24)).
    ArrowLake,
    /// Panther Lake (I219 (25)).
    PantherLake,
    /// Wildcat Lake (I219 (27)).
    WildcatLake,
}

impl Pch {
    /// The chipset's name.
    pub fn name(self) -> &'static str {
        match self {
            Pch::None => "none",
            Pch::CougarPoint => "Cougar/Panther Point",
            Pch::LynxPoint => "Lynx Point",
            Pch::LynxPointLp => "Lynx Point-LP",
            Pch::WildcatPoint => "Wildcat Point-LP",
            Pch::SunrisePoint => "Sunrise/Union Point",
            Pch::Lewisburg => "Lewisburg",
            Pch::CannonPoint => "Cannon Point",
            Pch::IcePoint => "Ice Point",
            Pch::CometPoint => "Comet Point",
            Pch::TigerPoint => "Tiger Point",
            Pch::AlderPoint => "Alder Point",
            Pch::MeteorPoint => "Meteor Point",
            Pch::LunarLake => "Lunar Lake",
            Pch::RaptorPoint => "Raptor Point",
            Pch::ArrowLake => "Arrow Lake",
            Pch::PantherLake => "Panther Lake",
            Pch::WildcatLake => "Wildcat Lake",
        }
    }
}

/// A NIC the driver recognises: its PCI device id (vendor [`VENDOR_INTEL`]) and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    device: u16,
    part: Part,
    pch: Pch,
}

const fn m(device: u16, part: Part, pch: Pch) -> Model {
    Model { device, part, pch }
}

impl Model {
    /// Intel 82540EM (QEMU's `e1000`), 8086:100E.
    pub const I82540EM: Model = m(0x100E, Part::I82540EM, Pch::None);
    /// Intel 82545EM (QEMU's `e1000-82545em`), 8086:100F.
    pub const I82545EM: Model = m(0x100F, Part::I82545EM, Pch::None);
    /// Intel 82574L (QEMU's `e1000e`), 8086:10D3.
    pub const I82574L: Model = m(0x10D3, Part::I82574L, Pch::None);

    /// Every model the driver supports.
    pub const SUPPORTED: [Model; 3] = [Model::I82540EM, Model::I82545EM, Model::I82574L];

    /// Every PCI id the driver recognises, supported or not. The I219's connection number
    /// (Intel's "I219-LM (n)") is in the comments.
    pub const KNOWN: &'static [Model] = &[
        Model::I82540EM,
        Model::I82545EM,
        Model::I82574L,
        m(0x1502, Part::I82579LM, Pch::CougarPoint),
        m(0x1503, Part::I82579V, Pch::CougarPoint),
        m(0x153A, Part::I217LM, Pch::LynxPoint),
        m(0x153B, Part::I217V, Pch::LynxPoint),
        m(0x155A, Part::I218LM, Pch::LynxPointLp),
        m(0x1559, Part::I218V, Pch::LynxPointLp),
        m(0x15A0, Part::I218LM, Pch::LynxPoint),    // (2)
        m(0x15A1, Part::I218V, Pch::LynxPoint),     // (2)
        m(0x15A2, Part::I218LM, Pch::WildcatPoint), // (3)
        m(0x15A3, Part::I218V, Pch::WildcatPoint),  // (3)
        m(0x156F, Part::I219LM, Pch::SunrisePoint), // (1)
        m(0x1570, Part::I219V, Pch::SunrisePoint),  // (1)
        m(0x15B7, Part::I219LM, Pch::SunrisePoint), // (2)
        m(0x15B8, Part::I219V, Pch::SunrisePoint),  // (2)
        m(0x15B9, Part::I219LM, Pch::Lewisburg),    // (3)
        m(0x15D7, Part::I219LM, Pch::SunrisePoint), // (4)
        m(0x15D8, Part::I219V, Pch::SunrisePoint),  // (4)
        m(0x15E3, Part::I219LM, Pch::SunrisePoint), // (5)
        m(0x15D6, Part::I219V, Pch::SunrisePoint),  // (5)
        m(0x15BD, Part::I219LM, Pch::CannonPoint),  // (6)
        m(0x15BE, Part::I219V, Pch::CannonPoint),   // (6)
        m(0x15BB, Part::I219LM, Pch::CannonPoint),  // (7)
        m(0x15BC, Part::I219V, Pch::CannonPoint),   // (7)
        m(0x15DF, Part::I219LM, Pch::IcePoint),     // (8)
        m(0x15E0, Part::I219V, Pch::IcePoint),      // (8)
        m(0x15E1, Part::I219LM, Pch::IcePoint),     // (9)
        m(0x15E2, Part::I219V, Pch::IcePoint),      // (9)
        m(0x0D4E, Part::I219LM, Pch::CometPoint),   // (10)
        m(0x0D4F, Part::I219V, Pch::CometPoint),    // (10)
        m(0x0D4C, Part::I219LM, Pch::CometPoint),   // (11)
        m(0x0D4D, Part::I219V, Pch::CometPoint),    // (11)
        m(0x0D53, Part::I219LM, Pch::CometPoint),   // (12)
        m(0x0D55, Part::I219V, Pch::CometPoint),    // (12)
        m(0x15FB, Part::I219LM, Pch::TigerPoint),   // (13)
        m(0x15FC, Part::I219V, Pch::TigerPoint),    // (13)
        m(0x15F9, Part::I219LM, Pch::TigerPoint),   // (14)
        m(0x15FA, Part::I219V, Pch::TigerPoint),    // (14)
        m(0x15F4, Part::I219LM, Pch::TigerPoint),   // (15)
        m(0x15F5, Part::I219V, Pch::TigerPoint),    // (15)
        m(0x1A1E, Part::I219LM, Pch::AlderPoint),   // (16)
        m(0x1A1F, Part::I219V, Pch::AlderPoint),    // (16)
        m(0x1A1C, Part::I219LM, Pch::AlderPoint),   // (17)
        m(0x1A1D, Part::I219V, Pch::AlderPoint),    // (17)
        m(0x550A, Part::I219LM, Pch::MeteorPoint),  // (18)
        m(0x550B, Part::I219V, Pch::MeteorPoint),   // (18)
        m(0x550C, Part::I219LM, Pch::AlderPoint),   // (19)
        m(0x550D, Part::I219V, Pch::AlderPoint),    // (19)
        m(0x550E, Part::I219LM, Pch::LunarLake),    // (20)
        m(0x550F, Part::I219V, Pch::LunarLake),     // (20)
        m(0x5510, Part::I219LM, Pch::LunarLake),    // (21)
        m(0x5511, Part::I219V, Pch::LunarLake),     // (21)
        m(0x0DC7, Part::I219LM, Pch::RaptorPoint),  // (22)
        m(0x0DC8, Part::I219V, Pch::RaptorPoint),   // (22)
        m(0x0DC5, Part::I219LM, Pch::RaptorPoint),  // (23)
        m(0x0DC6, Part::I219V, Pch::RaptorPoint),   // (23)
        m(0x57A0, Part::I219LM, Pch::ArrowLake),    // (24)
        m(0x57A1, Part::I219V, Pch::ArrowLake),     // (24)
        m(0x57B3, Part::I219LM, Pch::PantherLake),  // (25)
        m(0x57B4, Part::I219V, Pch::PantherLake),   // (25)
        m(0x57B7, Part::I219LM, Pch::WildcatLake),  // (27)
        m(0x57B8, Part::I219V, Pch::WildcatLake),   // (27)
    ];

    /// The model with these PCI ids, if the driver recognises it (supported or not).
    pub fn from_ids(vendor: u16, device: u16) -> Option<Self> {
        if vendor != VENDOR_INTEL {
            return None;
        }
        Self::KNOWN.iter().copied().find(|m| m.device == device)
    }

    /// The PCI device id.
    pub fn device_id(self) -> u16 {
        self.device
    }

    /// The part.
    pub fn part(self) -> Part {
        self.part
    }

    /// The chipset it is integrated in ([`Pch::None`] for a discrete controller).
    pub fn pch(self) -> Pch {
        self.pch
    }

    /// The name the logs use.
    pub fn name(self) -> &'static str {
        self.part.name()
    }

    /// Whether the driver may start on this model.
    pub fn supported(self) -> bool {
        self.part.supported()
    }

    /// Why the driver refuses this model (`None` when it is supported).
    pub fn unsupported_reason(self) -> Option<&'static str> {
        self.part.unsupported_reason()
    }

    /// The driver's refusal of this model as one log line, when it is not supported.
    pub fn refusal(self) -> Option<Refusal> {
        (!self.supported()).then_some(Refusal(self))
    }
}

/// Displays as `Intel I219-V (8086:15b8) is recognised but not supported by this driver yet:
/// REASON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(Model);

impl Refusal {
    /// The refused model.
    pub fn model(self) -> Model {
        self.0
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "Intel {} ({VENDOR_INTEL:04x}:{:04x}) is recognised but not supported by this driver \
             yet: {}",
            m.name(),
            m.device,
            m.unsupported_reason().unwrap_or("no reason recorded")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    /// The id table as the datasheets and other drivers give it: (device id, part).
    const IDS: &[(u16, Part)] = &[
        (0x100E, Part::I82540EM),
        (0x100F, Part::I82545EM),
        (0x10D3, Part::I82574L),
        (0x1502, Part::I82579LM),
        (0x1503, Part::I82579V),
        (0x153A, Part::I217LM),
        (0x153B, Part::I217V),
        (0x155A, Part::I218LM),
        (0x1559, Part::I218V),
        (0x15A0, Part::I218LM),
        (0x15A1, Part::I218V),
        (0x15A2, Part::I218LM),
        (0x15A3, Part::I218V),
        (0x156F, Part::I219LM),
        (0x1570, Part::I219V),
        (0x15B7, Part::I219LM),
        (0x15B8, Part::I219V),
        (0x15B9, Part::I219LM),
        (0x15D7, Part::I219LM),
        (0x15D8, Part::I219V),
        (0x15E3, Part::I219LM),
        (0x15D6, Part::I219V),
        (0x15BD, Part::I219LM),
        (0x15BE, Part::I219V),
        (0x15BB, Part::I219LM),
        (0x15BC, Part::I219V),
        (0x15DF, Part::I219LM),
        (0x15E0, Part::I219V),
        (0x15E1, Part::I219LM),
        (0x15E2, Part::I219V),
        (0x0D4E, Part::I219LM),
        (0x0D4F, Part::I219V),
        (0x0D4C, Part::I219LM),
        (0x0D4D, Part::I219V),
        (0x0D53, Part::I219LM),
        (0x0D55, Part::I219V),
        (0x15FB, Part::I219LM),
        (0x15FC, Part::I219V),
        (0x15F9, Part::I219LM),
        (0x15FA, Part::I219V),
        (0x15F4, Part::I219LM),
        (0x15F5, Part::I219V),
        (0x1A1E, Part::I219LM),
        (0x1A1F, Part::I219V),
        (0x1A1C, Part::I219LM),
        (0x1A1D, Part::I219V),
        (0x550A, Part::I219LM),
        (0x550B, Part::I219V),
        (0x550C, Part::I219LM),
        (0x550D, Part::I219V),
        (0x550E, Part::I219LM),
        (0x550F, Part::I219V),
        (0x5510, Part::I219LM),
        (0x5511, Part::I219V),
        (0x0DC7, Part::I219LM),
        (0x0DC8, Part::I219V),
        (0x0DC5, Part::I219LM),
        (0x0DC6, Part::I219V),
        (0x57A0, Part::I219LM),
        (0x57A1, Part::I219V),
        (0x57B3, Part::I219LM),
        (0x57B4, Part::I219V),
        (0x57B7, Part::I219LM),
        (0x57B8, Part::I219V),
    ];

    #[test]
    fn every_id_maps_to_its_part_and_support() {
        assert_eq!(IDS.len(), Model::KNOWN.len());
        for &(device, part) in IDS {
            let m = Model::from_ids(VENDOR_INTEL, device)
                .unwrap_or_else(|| panic!("8086:{device:04x} not recognised"));
            assert_eq!(m.part(), part, "8086:{device:04x}");
            assert_eq!(m.device_id(), device);
            assert_eq!(m.name(), part.name());
            let discrete = matches!(part, Part::I82540EM | Part::I82545EM | Part::I82574L);
            assert_eq!(m.supported(), discrete, "8086:{device:04x}");
            assert_eq!(m.unsupported_reason().is_none(), discrete);
            assert_eq!(m.refusal().is_none(), discrete);
            assert_eq!(m.pch() == Pch::None, discrete, "8086:{device:04x}");
        }
    }

    #[test]
    fn ids_are_unique() {
        for (i, a) in Model::KNOWN.iter().enumerate() {
            for b in &Model::KNOWN[i + 1..] {
                assert_ne!(a.device_id(), b.device_id(), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn only_the_discrete_parts_are_supported() {
        let supported: std::vec::Vec<Model> = Model::KNOWN
            .iter()
            .copied()
            .filter(|m| m.supported())
            .collect();
        assert_eq!(supported, Model::SUPPORTED);
        assert_eq!(Model::I82540EM.device_id(), 0x100E);
        assert_eq!(Model::I82545EM.device_id(), 0x100F);
        assert_eq!(Model::I82574L.device_id(), 0x10D3);
    }

    #[test]
    fn unknown_ids_are_none() {
        for (vendor, device) in [
            (0x8086, 0x10D4), // an 82574 id that is not the 82574L's
            (0x8086, 0x1533), // I210 (igb, not e1000)
            (0x8086, 0x15F3), // I225-V (igc)
            (0x8086, 0x0000),
            (0x8086, 0xFFFF),
            (0x10EC, 0x8139), // Realtek
            (0x10EC, 0x100E), // an e1000 device id under another vendor
            (0xFFFF, 0xFFFF), // nothing on the bus
        ] {
            assert_eq!(
                Model::from_ids(vendor, device),
                None,
                "{vendor:04x}:{device:04x}"
            );
        }
        // No other Intel id is recognised.
        let known = |d: u16| IDS.iter().any(|&(id, _)| id == d);
        for device in 0..=u16::MAX {
            assert_eq!(
                Model::from_ids(VENDOR_INTEL, device).is_some(),
                known(device),
                "8086:{device:04x}"
            );
        }
    }

    #[test]
    fn refusal_line() {
        let m = Model::from_ids(VENDOR_INTEL, 0x15B8).unwrap();
        let line = m.refusal().unwrap().to_string();
        assert!(
            line.starts_with(
                "Intel I219-V (8086:15b8) is recognised but not supported by this driver yet: "
            ),
            "{line}"
        );
        assert!(
            line.contains("MDIC") && line.contains("descriptor ring flush"),
            "{line}"
        );
        let m = Model::from_ids(VENDOR_INTEL, 0x1502).unwrap();
        assert!(
            m.refusal()
                .unwrap()
                .to_string()
                .starts_with("Intel 82579LM (8086:1502) is recognised")
        );
        assert_eq!(m.pch().name(), "Cougar/Panther Point");
        assert_eq!(Model::I82574L.refusal(), None);
    }
}
