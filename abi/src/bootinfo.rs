//! The generic bootinfo handed to the root server through KIP `BootInfo` (spec 7.4):
//! a writer that builds it into a byte buffer and a bounds-checked reader.
//!
//! Layout (all fields 64-bit little-endian words): an 8-word header (magic, version 1,
//! total size, offset of the first record = 64, number of records, 3 reserved words), then
//! records. Each record starts with type, version, offset_next (bytes from this record to the
//! next). Command lines are NUL-terminated strings copied right after their record; the
//! record's `cmdline_offset` counts from the record start (0 = no command line). Records and
//! strings are padded to 8 bytes.
//!
//! The reader never panics: it checks every offset against the slice and stops at the
//! first inconsistency (yielding one error).

/// Header magic (spec 7.4).
pub const BOOTINFO_MAGIC: u64 = 0x14b0_021d;
/// Header version (spec 7.4).
pub const BOOTINFO_VERSION: u64 = 1;
/// Header size = offset of the first record (spec 7.4).
pub const HEADER_SIZE: usize = 64;
/// Version written into every record.
pub const RECORD_VERSION: u64 = 1;

/// Record type: boot module (spec 7.4).
pub const TYPE_MODULE: u64 = 0x0001;
/// Record type: simple executable (spec 7.4).
pub const TYPE_SIMPLE_EXEC: u64 = 0x0002;
/// Record type: EFI tables (spec 7.4).
pub const TYPE_EFI_TABLES: u64 = 0x0101;
/// Record type: multiboot info (spec 7.4).
pub const TYPE_MULTIBOOT: u64 = 0x0102;

/// Errors of the writer and reader (spec 7.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BootInfoError {
    /// The buffer cannot hold the header or the next record.
    BufferTooSmall,
    /// Magic or version does not match.
    BadHeader,
    /// A record or string lies outside the data, or offsets are inconsistent.
    Malformed,
}

/// A SimpleExec record's fields (spec 7.4), in record order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SimpleExec {
    /// Physical start of text.
    pub text_pstart: u64,
    /// Virtual start of text.
    pub text_vstart: u64,
    /// Size of text.
    pub text_size: u64,
    /// Physical start of data.
    pub data_pstart: u64,
    /// Virtual start of data.
    pub data_vstart: u64,
    /// Size of data.
    pub data_size: u64,
    /// Physical start of bss.
    pub bss_pstart: u64,
    /// Virtual start of bss.
    pub bss_vstart: u64,
    /// Size of bss.
    pub bss_size: u64,
    /// Entry point.
    pub initial_ip: u64,
    /// Flags (ELF class).
    pub flags: u64,
    /// Label.
    pub label: u64,
}

/// EFITables record fields (spec 7.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EfiTables {
    /// EFI system table.
    pub systab: u64,
    /// Memory map.
    pub memmap: u64,
    /// Memory map size.
    pub memmap_size: u64,
    /// Memory descriptor size.
    pub memdesc_size: u64,
    /// Memory descriptor version.
    pub memdesc_version: u64,
}

/// One decoded record (spec 7.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Record<'a> {
    /// A boot module.
    Module {
        /// Physical start.
        start: u64,
        /// Size in bytes.
        size: u64,
        /// Command line without the NUL, if present.
        cmdline: Option<&'a [u8]>,
    },
    /// A decoded ELF executable.
    SimpleExec {
        /// The fields.
        exec: SimpleExec,
        /// Command line without the NUL, if present.
        cmdline: Option<&'a [u8]>,
    },
    /// EFI tables.
    EfiTables(EfiTables),
    /// Address of the multiboot info.
    Multiboot {
        /// Physical address of the MBI (copy).
        address: u64,
    },
    /// A record of another type: type, version and its bytes (from the record start, up to
    /// offset_next or the end of data).
    Unknown {
        /// Record type.
        ty: u64,
        /// Record version.
        version: u64,
        /// Raw bytes.
        bytes: &'a [u8],
    },
}

const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

fn read_u64(bytes: &[u8], off: usize) -> Option<u64> {
    let end = off.checked_add(8)?;
    let b: [u8; 8] = bytes.get(off..end)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Builds a bootinfo into a caller-provided buffer (spec 7.4). The header is kept valid
/// after every append.
#[derive(Debug)]
pub struct BootInfoWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    count: u64,
}

impl<'a> BootInfoWriter<'a> {
    /// Starts a bootinfo with an empty record list; zeroes the header (spec 7.4).
    pub fn new(buf: &'a mut [u8]) -> Result<Self, BootInfoError> {
        let header = buf
            .get_mut(..HEADER_SIZE)
            .ok_or(BootInfoError::BufferTooSmall)?;
        header.fill(0);
        let mut w = Self {
            buf,
            pos: HEADER_SIZE,
            count: 0,
        };
        w.put(0, BOOTINFO_MAGIC);
        w.put(8, BOOTINFO_VERSION);
        w.put(24, HEADER_SIZE as u64);
        w.sync_header();
        Ok(w)
    }

    fn put(&mut self, off: usize, v: u64) {
        if let Some(dst) = self.buf.get_mut(off..off + 8) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn sync_header(&mut self) {
        self.put(16, self.pos as u64);
        self.put(32, self.count);
    }

    /// Appends a record of `fields` (type, version, offset_next are filled in) and an
    /// optional NUL-terminated command line whose offset is written into field
    /// `cmdline_field` (index into `fields`).
    fn append(
        &mut self,
        ty: u64,
        fields: &[u64],
        cmdline: Option<(&[u8], usize)>,
    ) -> Result<(), BootInfoError> {
        let rec_size = 24 + 8 * fields.len();
        let str_size = cmdline.map_or(0, |(s, _)| pad8(s.len() + 1));
        let total = rec_size + str_size;
        let end = self
            .pos
            .checked_add(total)
            .ok_or(BootInfoError::BufferTooSmall)?;
        let area = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(BootInfoError::BufferTooSmall)?;
        area.fill(0);
        let start = self.pos;
        self.put(start, ty);
        self.put(start + 8, RECORD_VERSION);
        self.put(start + 16, total as u64);
        for (i, &f) in fields.iter().enumerate() {
            self.put(start + 24 + 8 * i, f);
        }
        if let Some((s, field)) = cmdline {
            self.put(start + 24 + 8 * field, rec_size as u64);
            let at = start + rec_size;
            self.buf[at..at + s.len()].copy_from_slice(s);
        }
        self.pos = end;
        self.count += 1;
        self.sync_header();
        Ok(())
    }

    /// Appends a Module record (spec 7.4).
    pub fn add_module(
        &mut self,
        start: u64,
        size: u64,
        cmdline: Option<&[u8]>,
    ) -> Result<(), BootInfoError> {
        self.append(TYPE_MODULE, &[start, size, 0], cmdline.map(|s| (s, 2)))
    }

    /// Appends a SimpleExec record (spec 7.4).
    pub fn add_simple_exec(
        &mut self,
        e: &SimpleExec,
        cmdline: Option<&[u8]>,
    ) -> Result<(), BootInfoError> {
        let fields = [
            e.text_pstart,
            e.text_vstart,
            e.text_size,
            e.data_pstart,
            e.data_vstart,
            e.data_size,
            e.bss_pstart,
            e.bss_vstart,
            e.bss_size,
            e.initial_ip,
            e.flags,
            e.label,
            0,
        ];
        self.append(TYPE_SIMPLE_EXEC, &fields, cmdline.map(|s| (s, 12)))
    }

    /// Appends an EFITables record (spec 7.4).
    pub fn add_efi_tables(&mut self, t: &EfiTables) -> Result<(), BootInfoError> {
        self.append(
            TYPE_EFI_TABLES,
            &[
                t.systab,
                t.memmap,
                t.memmap_size,
                t.memdesc_size,
                t.memdesc_version,
            ],
            None,
        )
    }

    /// Appends a Multiboot record (spec 7.4).
    pub fn add_multiboot(&mut self, address: u64) -> Result<(), BootInfoError> {
        self.append(TYPE_MULTIBOOT, &[address], None)
    }

    /// Bytes used so far (= header `size`).
    pub const fn size(&self) -> usize {
        self.pos
    }

    /// Finishes; returns the total size in bytes.
    pub fn finish(self) -> usize {
        self.pos
    }
}

/// A parsed bootinfo header over a byte slice (spec 7.4).
#[derive(Clone, Copy, Debug)]
pub struct BootInfo<'a> {
    data: &'a [u8],
    first_entry: u64,
    num_entries: u64,
}

impl<'a> BootInfo<'a> {
    /// Checks magic and version; the data considered is `bytes` cut to the header's size
    /// field (spec 7.4).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BootInfoError> {
        let magic = read_u64(bytes, 0).ok_or(BootInfoError::Malformed)?;
        let version = read_u64(bytes, 8).ok_or(BootInfoError::Malformed)?;
        if magic != BOOTINFO_MAGIC || version != BOOTINFO_VERSION {
            return Err(BootInfoError::BadHeader);
        }
        let size = read_u64(bytes, 16).ok_or(BootInfoError::Malformed)?;
        let first_entry = read_u64(bytes, 24).ok_or(BootInfoError::Malformed)?;
        let num_entries = read_u64(bytes, 32).ok_or(BootInfoError::Malformed)?;
        let len = usize::try_from(size).map_or(bytes.len(), |s| s.min(bytes.len()));
        Ok(Self {
            data: &bytes[..len],
            first_entry,
            num_entries,
        })
    }

    /// Number of records the header announces.
    pub const fn num_entries(&self) -> u64 {
        self.num_entries
    }

    /// Iterates the records (spec 7.4).
    pub fn records(&self) -> Records<'a> {
        Records {
            data: self.data,
            pos: usize::try_from(self.first_entry).ok(),
            remaining: self.num_entries,
        }
    }
}

/// Iterator over bootinfo records; yields at most one error, then stops.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    data: &'a [u8],
    pos: Option<usize>,
    remaining: u64,
}

impl<'a> Records<'a> {
    fn cmdline(&self, rec: usize, off: u64) -> Result<Option<&'a [u8]>, BootInfoError> {
        if off == 0 {
            return Ok(None);
        }
        let start = usize::try_from(off)
            .ok()
            .and_then(|o| rec.checked_add(o))
            .ok_or(BootInfoError::Malformed)?;
        let tail = self.data.get(start..).ok_or(BootInfoError::Malformed)?;
        let nul = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(BootInfoError::Malformed)?;
        Ok(Some(&tail[..nul]))
    }

    fn decode(&self, pos: usize) -> Result<(Record<'a>, u64), BootInfoError> {
        let word = |i: usize| {
            pos.checked_add(8 * i)
                .and_then(|off| read_u64(self.data, off))
                .ok_or(BootInfoError::Malformed)
        };
        let ty = word(0)?;
        let version = word(1)?;
        let next = word(2)?;
        let rec_end = usize::try_from(next)
            .ok()
            .and_then(|n| pos.checked_add(n))
            .map_or(self.data.len(), |e| e.min(self.data.len()));
        let rec = match ty {
            TYPE_MODULE => Record::Module {
                start: word(3)?,
                size: word(4)?,
                cmdline: self.cmdline(pos, word(5)?)?,
            },
            TYPE_SIMPLE_EXEC => {
                let mut f = [0u64; 12];
                for (i, v) in f.iter_mut().enumerate() {
                    *v = word(3 + i)?;
                }
                let exec = SimpleExec {
                    text_pstart: f[0],
                    text_vstart: f[1],
                    text_size: f[2],
                    data_pstart: f[3],
                    data_vstart: f[4],
                    data_size: f[5],
                    bss_pstart: f[6],
                    bss_vstart: f[7],
                    bss_size: f[8],
                    initial_ip: f[9],
                    flags: f[10],
                    label: f[11],
                };
                Record::SimpleExec {
                    exec,
                    cmdline: self.cmdline(pos, word(15)?)?,
                }
            }
            TYPE_EFI_TABLES => Record::EfiTables(EfiTables {
                systab: word(3)?,
                memmap: word(4)?,
                memmap_size: word(5)?,
                memdesc_size: word(6)?,
                memdesc_version: word(7)?,
            }),
            TYPE_MULTIBOOT => Record::Multiboot { address: word(3)? },
            _ => Record::Unknown {
                ty,
                version,
                bytes: self.data.get(pos..rec_end).unwrap_or(&[]),
            },
        };
        Ok((rec, next))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BootInfoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let pos = self.pos?;
        self.remaining -= 1;
        match self.decode(pos) {
            Ok((rec, next)) => {
                // A record that does not advance past its own 3-word header cannot be followed.
                self.pos = if next < 24 {
                    self.remaining = 0;
                    None
                } else {
                    usize::try_from(next).ok().and_then(|n| pos.checked_add(n))
                };
                Some(Ok(rec))
            }
            Err(e) => {
                self.pos = None;
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}
