//! What a source file holds, told by its first bytes: a raw disk image, the same compressed
//! (xz, zstd, gzip), or a qcow2 image. Distributions publish all of these.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Xz,
    Zstd,
    Gzip,
    Qcow2,
}

impl Format {
    /// The format the file's magic number says; anything without one is a raw disk image.
    pub fn detect(head: &[u8]) -> Format {
        match head {
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Format::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Format::Zstd,
            [0x1f, 0x8b, ..] => Format::Gzip,
            [b'Q', b'F', b'I', 0xfb, ..] => Format::Qcow2,
            _ => Format::Raw,
        }
    }

    /// The format the file's name promises, if its extension names one.
    pub fn named(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "xz" => Some(Format::Xz),
            "zst" | "zstd" => Some(Format::Zstd),
            "gz" => Some(Format::Gzip),
            "qcow2" => Some(Format::Qcow2),
            "raw" | "img" => Some(Format::Raw),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Qcow2 => "qcow2",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_decide() {
        assert_eq!(Format::detect(b"\xfd7zXZ\0rest"), Format::Xz);
        assert_eq!(Format::detect(b"\x28\xb5\x2f\xfd\x04"), Format::Zstd);
        assert_eq!(Format::detect(b"\x1f\x8b\x08"), Format::Gzip);
        assert_eq!(Format::detect(b"QFI\xfb\0\0\0\x03"), Format::Qcow2);
        assert_eq!(Format::detect(&[0u8; 512]), Format::Raw);
        assert_eq!(Format::detect(b""), Format::Raw);
        assert_eq!(Format::named(Path::new("f.raw.XZ")), Some(Format::Xz));
        assert_eq!(Format::named(Path::new("disk")), None);
    }
}
