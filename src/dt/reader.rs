//! A bounds-checked reader of the flattened device tree format
//! (Devicetree Specification v0.4, chapter 5): the header, the memory
//! reservation block and the structure block as a stream of tokens.
//!
//! It allocates nothing (the hyp reads its boot modules with it before it
//! has a heap) and never panics: a truncated or malformed blob is an
//! [`DtError`]. `FDT_NOP` tokens, which loaders leave where they deleted
//! something, are skipped wherever they appear.

use core::fmt;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_SIZE: usize = 40;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Why a blob is not a usable device tree.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DtError {
    /// Bad magic, or a header whose blocks lie outside the blob.
    BadHeader,
    /// The structure block ends early or holds an unknown token.
    Truncated,
    /// A name that is not NUL-terminated UTF-8, or a string offset outside
    /// the strings block.
    BadName,
    /// Nodes nested deeper than [`MAX_DEPTH`], or unbalanced.
    BadNesting,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadHeader => "not a flattened device tree (bad header)",
            Self::Truncated => "device tree structure block is truncated or malformed",
            Self::BadName => "device tree has a malformed node or property name",
            Self::BadNesting => "device tree nodes are unbalanced or nested too deeply",
        })
    }
}

/// Nesting deeper than this is refused (real trees stay under 8).
pub const MAX_DEPTH: usize = 32;

/// One token of the structure block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Token<'a> {
    /// A node begins; the root's name is empty.
    Begin(&'a str),
    Prop {
        name: &'a str,
        value: &'a [u8],
    },
    End,
}

/// A parsed header and the blob it describes.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
    reservations: &'a [u8],
    pub boot_cpuid: u32,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    Some((u64::from(be32(bytes, at)?) << 32) | u64::from(be32(bytes, at + 4)?))
}

/// The NUL-terminated UTF-8 string at the start of `bytes`.
fn c_str(bytes: &[u8]) -> Result<&str, DtError> {
    let len = bytes.iter().position(|&b| b == 0).ok_or(DtError::BadName)?;
    core::str::from_utf8(&bytes[..len]).map_err(|_| DtError::BadName)
}

impl<'a> Fdt<'a> {
    /// Reads the header of the blob `dtb` (its `totalsize` bytes at most).
    pub fn new(dtb: &'a [u8]) -> Result<Self, DtError> {
        let field = |i: usize| {
            be32(dtb, i * 4)
                .map(|v| v as usize)
                .ok_or(DtError::BadHeader)
        };
        if dtb.len() < HEADER_SIZE || field(0)? != MAGIC as usize {
            return Err(DtError::BadHeader);
        }
        let total = field(1)?;
        let blob = dtb.get(..total).ok_or(DtError::BadHeader)?;
        let block = |off: usize, size: usize| {
            off.checked_add(size)
                .and_then(|end| blob.get(off..end))
                .ok_or(DtError::BadHeader)
        };
        // Header fields: off_dt_struct (2), off_dt_strings (3),
        // off_mem_rsvmap (4), boot_cpuid_phys (7), size_dt_strings (8),
        // size_dt_struct (9).
        let reservations = blob.get(field(4)?..).ok_or(DtError::BadHeader)?;
        Ok(Self {
            structs: block(field(2)?, field(9)?)?,
            strings: block(field(3)?, field(8)?)?,
            reservations,
            boot_cpuid: field(7)? as u32,
        })
    }

    /// Bytes the tree's content takes (header and blocks, not the padding
    /// loaders add after them).
    pub fn content_bytes(&self) -> usize {
        HEADER_SIZE
            + 16 * (self.memory_reservations().count() + 1)
            + self.structs.len()
            + self.strings.len()
    }

    /// The `/memreserve/` entries, `(address, size)`, up to the
    /// terminating zero entry.
    pub fn memory_reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let block = self.reservations;
        (0..)
            .map_while(move |i: usize| {
                let at = i.checked_mul(16)?;
                Some((be64(block, at)?, be64(block, at + 8)?))
            })
            .take_while(|&(address, size)| address != 0 || size != 0)
    }

    /// The structure block's tokens, `FDT_NOP` skipped, ending at `FDT_END`.
    pub fn tokens(&self) -> Tokens<'a> {
        Tokens {
            structs: self.structs,
            strings: self.strings,
            at: 0,
            depth: 0,
            done: false,
        }
    }
}

/// Iterator over the tokens of a structure block. After an error it yields
/// nothing more.
pub struct Tokens<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
    at: usize,
    depth: usize,
    done: bool,
}

impl<'a> Tokens<'a> {
    /// Nesting depth after the last token returned (the root's properties
    /// are at depth 1).
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn next_token(&mut self) -> Result<Option<Token<'a>>, DtError> {
        loop {
            let token = be32(self.structs, self.at).ok_or(DtError::Truncated)?;
            self.at += 4;
            match token {
                FDT_NOP => continue,
                FDT_BEGIN_NODE => {
                    let rest = self.structs.get(self.at..).ok_or(DtError::Truncated)?;
                    let name = c_str(rest)?;
                    self.at = (self.at + name.len() + 1).next_multiple_of(4);
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(DtError::BadNesting);
                    }
                    return Ok(Some(Token::Begin(name)));
                }
                FDT_END_NODE => {
                    self.depth = self.depth.checked_sub(1).ok_or(DtError::BadNesting)?;
                    return Ok(Some(Token::End));
                }
                FDT_PROP => {
                    let len = be32(self.structs, self.at).ok_or(DtError::Truncated)? as usize;
                    let name_off =
                        be32(self.structs, self.at + 4).ok_or(DtError::Truncated)? as usize;
                    let start = self.at + 8;
                    let value = self
                        .structs
                        .get(start..start.checked_add(len).ok_or(DtError::Truncated)?)
                        .ok_or(DtError::Truncated)?;
                    let name = c_str(self.strings.get(name_off..).ok_or(DtError::BadName)?)?;
                    if self.depth == 0 {
                        return Err(DtError::BadNesting);
                    }
                    self.at = (start + len).next_multiple_of(4);
                    return Ok(Some(Token::Prop { name, value }));
                }
                FDT_END if self.depth == 0 => return Ok(None),
                FDT_END => return Err(DtError::BadNesting),
                _ => return Err(DtError::Truncated),
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<Token<'a>, DtError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_token();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

/// The value of a property made of `cells` big-endian 32-bit cells (1 or 2)
/// at cell index `index`.
pub fn cells_at(value: &[u8], index: usize, cells: usize) -> Option<u64> {
    if !(1..=2).contains(&cells) {
        return None;
    }
    let at = index.checked_mul(4)?;
    if cells == 1 {
        be32(value, at).map(u64::from)
    } else {
        be64(value, at)
    }
}

/// The strings of a string-list property (`compatible`).
pub fn strings(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == 0).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRT_1G: &[u8] = include_bytes!("../../tests/fixtures/qemu-virt-1g.dtb");

    #[test]
    fn a_qemu_tree_reads_as_balanced_tokens_with_the_root_first() {
        let fdt = Fdt::new(VIRT_1G).unwrap();
        let mut tokens = fdt.tokens();
        assert_eq!(tokens.next(), Some(Ok(Token::Begin(""))));
        let rest: Result<std::vec::Vec<_>, _> = tokens.collect();
        let rest = rest.unwrap();
        let begins = rest.iter().filter(|t| matches!(t, Token::Begin(_))).count();
        let ends = rest.iter().filter(|t| matches!(t, Token::End)).count();
        assert_eq!(begins + 1, ends, "every node ends");
        assert!(rest.contains(&Token::Begin("chosen")));
        assert_eq!(fdt.memory_reservations().count(), 0);
        // Header, one terminating reservation, 0x1cbc + 0x217 bytes of
        // blocks; the rest of the blob is padding.
        assert_eq!(fdt.content_bytes(), 40 + 16 + 0x1cbc + 0x217);
    }

    #[test]
    fn nop_tokens_are_skipped_anywhere() {
        let fdt = Fdt::new(VIRT_1G).unwrap();
        let plain: std::vec::Vec<_> = fdt.tokens().collect();
        // Put an FDT_NOP after every token by rebuilding the struct block.
        let mut blob = VIRT_1G.to_vec();
        let off = be32(&blob, 8).unwrap() as usize;
        let size = be32(&blob, 36).unwrap() as usize;
        let mut with_nops = std::vec::Vec::new();
        let mut at = 0;
        let structs = &VIRT_1G[off..off + size];
        while at < size {
            let token = be32(structs, at).unwrap();
            let len = match token {
                FDT_BEGIN_NODE => {
                    4 + (c_str(&structs[at + 4..]).unwrap().len() + 1).next_multiple_of(4)
                }
                FDT_PROP => 12 + (be32(structs, at + 4).unwrap() as usize).next_multiple_of(4),
                _ => 4,
            };
            with_nops.extend_from_slice(&FDT_NOP.to_be_bytes());
            with_nops.extend_from_slice(&structs[at..at + len]);
            at += len;
        }
        let grown = with_nops.len() - size;
        let strings_off = be32(&blob, 12).unwrap() as usize;
        let strings_len = be32(&blob, 32).unwrap() as usize;
        let strings = VIRT_1G[strings_off..strings_off + strings_len].to_vec();
        blob.truncate(off);
        blob.extend_from_slice(&with_nops);
        blob.extend_from_slice(&strings);
        let put = |b: &mut [u8], i: usize, v: usize| {
            b[i * 4..i * 4 + 4].copy_from_slice(&(v as u32).to_be_bytes())
        };
        put(&mut blob, 9, size + grown);
        put(&mut blob, 3, off + size + grown);
        let total = blob.len();
        put(&mut blob, 1, total);
        let nopped: std::vec::Vec<_> = Fdt::new(&blob).unwrap().tokens().collect();
        assert_eq!(plain, nopped);
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        assert_eq!(Fdt::new(&[0; 64]).unwrap_err(), DtError::BadHeader);
        assert_eq!(Fdt::new(&VIRT_1G[..30]).unwrap_err(), DtError::BadHeader);
        assert_eq!(Fdt::new(&VIRT_1G[..200]).unwrap_err(), DtError::BadHeader);
        // Every one-byte corruption of the structure block either parses or
        // fails with an error.
        let off = be32(VIRT_1G, 8).unwrap() as usize;
        for i in (off..off + 2000).step_by(3) {
            let mut blob = VIRT_1G.to_vec();
            blob[i] ^= 0xa5;
            if let Ok(fdt) = Fdt::new(&blob) {
                for t in fdt.tokens() {
                    let _ = t;
                }
            }
        }
    }

    #[test]
    fn cells_are_read_big_endian_one_or_two_at_a_time() {
        let v = [0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0, 0, 0];
        assert_eq!(cells_at(&v, 0, 2), Some((1 << 32) | 2));
        assert_eq!(cells_at(&v, 1, 1), Some(2));
        assert_eq!(cells_at(&v, 2, 2), None, "past the end");
        assert_eq!(cells_at(&v, 0, 3), None);
    }
}
