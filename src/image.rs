//! The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst).
//!
//! The hyp boots its EL1 payload the way a boot loader boots Linux: it reads
//! this header to learn where the image wants to sit and how much memory it
//! needs.

/// The fields of the header the loader uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ImageHeader {
    /// Offset of the image from a 2 MiB aligned base.
    pub text_offset: u64,
    /// Bytes the image occupies once running, BSS included.
    pub image_size: u64,
    /// Bit 3: 1 = the base may be anywhere in RAM; 0 = as low as possible.
    pub flags: u64,
}

/// Why an image cannot be booted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ImageError {
    TooShort,
    BadMagic,
    BigEndian,
    /// `image_size` of 0 means a pre-3.17 kernel with an unknown size.
    UnknownSize,
}

pub const HEADER_SIZE: usize = 64;
const MAGIC: u32 = 0x644d_5241; // "ARM\x64"

impl ImageHeader {
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ImageError::TooShort);
        }
        let u64_at = |off: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[off..off + 8]);
            u64::from_le_bytes(b)
        };
        let magic = u32::from_le_bytes([bytes[56], bytes[57], bytes[58], bytes[59]]);
        if magic != MAGIC {
            return Err(ImageError::BadMagic);
        }
        let header = Self {
            text_offset: u64_at(8),
            image_size: u64_at(16),
            flags: u64_at(24),
        };
        if header.flags & 1 != 0 {
            return Err(ImageError::BigEndian);
        }
        if header.image_size == 0 {
            return Err(ImageError::UnknownSize);
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, size: u64, flags: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[56..60].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn parses_and_validates() {
        let h = ImageHeader::parse(&header(0x8_0000, 0x12_3000, 0xa)).unwrap();
        assert_eq!(
            (h.text_offset, h.image_size, h.flags),
            (0x8_0000, 0x12_3000, 0xa)
        );
        assert_eq!(ImageHeader::parse(&[0; 10]), Err(ImageError::TooShort));
        assert_eq!(ImageHeader::parse(&[0; 64]), Err(ImageError::BadMagic));
        assert_eq!(
            ImageHeader::parse(&header(0, 0x1000, 1)),
            Err(ImageError::BigEndian)
        );
        assert_eq!(
            ImageHeader::parse(&header(0, 0, 0)),
            Err(ImageError::UnknownSize)
        );
    }
}
