//! What a power cut leaves of the writes no sync covered. Three models, from the crudest to
//! the closest to Linux (docs/testing.md lists what each can and cannot produce):
//! - everything unsynced is undone;
//! - per file, a prefix of the unsynced writes persists and the next one is torn (the order in
//!   which a program issued them);
//! - per 4 KiB page, any subset of the dirty pages persists, in no order at all, and a page may
//!   be torn at 512-byte sectors: the page cache writes dirty pages back whenever and in
//!   whatever order it likes, and a device without atomic 4 KiB writes can tear one.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The unit of writeback in the page model.
pub const PAGE_BYTES: u64 = 4096;
/// The unit a device writes atomically, at least: a torn page is torn at these boundaries.
pub const SECTOR_BYTES: u64 = 512;
const SECTORS_PER_PAGE: u64 = PAGE_BYTES / SECTOR_BYTES;

/// What a simulated power loss leaves of the writes no sync has covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerLoss {
    /// Every one of them is undone.
    Everything,
    /// Per file, the seed picks how many of them persisted (oldest first), and at which byte
    /// the next one was torn; the rest are undone.
    Seeded(u64),
    /// Per 4 KiB page, in no order: each dirty page persisted or not, or was torn.
    Pages(PageLoss),
}

/// The page model's parameters. Its outcomes shrink with the percentages: 0 and 0 undo
/// every page, like [`PowerLoss::Everything`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLoss {
    /// Picks each page's fate, independently of every other page's.
    pub seed: u64,
    /// Share of dirty pages that reached the device (0–100).
    pub keep_percent: u8,
    /// Share of the pages that reached the device that were torn (0–100).
    pub torn_percent: u8,
}

/// What became of one dirty page at the power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFate {
    /// It reached the device whole.
    Kept,
    /// It never reached the device: the device holds what it held at the last sync.
    Lost,
    /// Torn: sector `i` (of 8) reached the device when bit `i` is set.
    Torn {
        /// Bit `i` set: sector `i` holds the new bytes.
        sectors_kept: u8,
    },
}

/// A completed write no sync has covered yet: its number, offset and length, and the bytes it
/// replaced (fewer than `len` when the write extended the file).
#[derive(Debug)]
pub(super) struct UndoRecord {
    pub(super) id: u64,
    pub(super) pos: u64,
    pub(super) len: usize,
    pub(super) old: Vec<u8>,
}

impl UndoRecord {
    pub(super) fn end(&self) -> u64 {
        self.pos + self.len as u64
    }

    /// Undoes the write but for its first `keep` bytes: the bytes it replaced come back, and
    /// those it added past the file's old end go (cut off if nothing was written after them,
    /// zeroes otherwise, as a device holds blocks a later size update made part of the file).
    fn undo(&self, file: &std::fs::File, keep: usize) -> io::Result<()> {
        if keep < self.old.len() {
            file.write_all_at(&self.old[keep..], self.pos + keep as u64)?;
        }
        let added_from = keep.max(self.old.len());
        if added_from < self.len {
            let from = self.pos + added_from as u64;
            let file_len = file.metadata()?.len();
            if file_len > self.end() {
                file.write_all_at(&vec![0; self.len - added_from], from)?;
            } else if file_len > from {
                file.set_len(from)?;
            }
        }
        Ok(())
    }
}

/// Per file, the writes a power cut may take back.
pub(super) type Journaled = Vec<(PathBuf, Vec<UndoRecord>)>;

/// Opens a journaled file for undoing; `None` if it is gone (a deleted stream's).
fn open_existing(path: &Path) -> io::Result<Option<std::fs::File>> {
    match std::fs::File::options().read(true).write(true).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A small deterministic generator (splitmix64) for seeded power loss.
pub(super) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator seeded by `seed` and a file's name, so each file draws its own outcome.
fn file_rng(seed: u64, path: &Path) -> u64 {
    let name = path.as_os_str().as_encoded_bytes();
    name.iter()
        .fold(seed, |h, &b| (h ^ u64::from(b)).rotate_left(7))
}

/// Undoes every write in `writes`, newest first; returns how many.
pub(super) fn undo_all(writes: &Journaled) -> io::Result<usize> {
    let mut undone = 0;
    for (path, writes) in writes {
        let Some(file) = open_existing(path)? else {
            continue;
        };
        for write in writes.iter().rev() {
            write.undo(&file, 0)?;
            undone += 1;
        }
    }
    Ok(undone)
}

/// The prefix model: per file, the seed keeps the oldest writes up to a point, tears the next
/// one, and undoes the rest. Returns the writes undone or torn.
pub(super) fn lose_prefixes(writes: &Journaled, seed: u64) -> io::Result<usize> {
    let mut lost = 0;
    for (path, writes) in writes.iter().filter(|(_, w)| !w.is_empty()) {
        let Some(file) = open_existing(path)? else {
            continue;
        };
        let mut rng = file_rng(seed, path);
        // Writes below `kept` persisted; the one at `kept` keeps its first `torn` bytes.
        let kept = (splitmix(&mut rng) % (writes.len() as u64 + 1)) as usize;
        let torn = writes
            .get(kept)
            .map_or(0, |w| (splitmix(&mut rng) % (w.len as u64 + 1)) as usize);
        for (i, write) in writes.iter().enumerate().rev() {
            let keep = match i.cmp(&kept) {
                std::cmp::Ordering::Less => break,
                std::cmp::Ordering::Equal => torn,
                std::cmp::Ordering::Greater => 0,
            };
            write.undo(&file, keep)?;
            lost += 1;
        }
    }
    Ok(lost)
}

impl PageLoss {
    /// The fate of `page` of the file at `path`: a function of the seed, the file and the page
    /// alone, so the outcome does not depend on the order pages are visited in.
    pub fn fate(&self, path: &Path, page: u64) -> PageFate {
        let mut rng = file_rng(self.seed, path) ^ page.wrapping_mul(0xA24B_AED4_963E_E407);
        if splitmix(&mut rng) % 100 >= u64::from(self.keep_percent) {
            return PageFate::Lost;
        }
        if splitmix(&mut rng) % 100 >= u64::from(self.torn_percent) {
            return PageFate::Kept;
        }
        PageFate::Torn {
            sectors_kept: (splitmix(&mut rng) & 0xff) as u8,
        }
    }
}

/// The page model: every page an unsynced write touched gets the fate `fate` picks; pages only
/// a failed sync's writes touched (`poisoned`) are lost. Returns the pages lost or torn.
pub(super) fn lose_pages(
    unsynced: Journaled,
    poisoned: Journaled,
    fate: &mut dyn FnMut(&Path, u64) -> PageFate,
) -> io::Result<usize> {
    let mut per_file: BTreeMap<PathBuf, (Vec<UndoRecord>, Vec<UndoRecord>)> = BTreeMap::new();
    for (path, writes) in unsynced {
        per_file.entry(path).or_default().0.extend(writes);
    }
    for (path, writes) in poisoned {
        per_file.entry(path).or_default().1.extend(writes);
    }
    let mut lost = 0;
    for (path, (unsynced, poisoned)) in per_file {
        let Some(file) = open_existing(&path)? else {
            continue;
        };
        lost += lose_file_pages(&file, &path, &unsynced, &poisoned, fate)?;
    }
    Ok(lost)
}

fn lose_file_pages(
    file: &std::fs::File,
    path: &Path,
    unsynced: &[UndoRecord],
    poisoned: &[UndoRecord],
    fate: &mut dyn FnMut(&Path, u64) -> PageFate,
) -> io::Result<usize> {
    let len = file.metadata()?.len();
    // Every dirty page, and whether a write since the last sync dirtied it (a page only a
    // failed sync's writes dirtied is clean in the cache: it never reaches the device).
    let mut pages: BTreeMap<u64, bool> = BTreeMap::new();
    let tagged = unsynced.iter().map(|w| (w, true));
    for (write, redirtied) in tagged.chain(poisoned.iter().map(|w| (w, false))) {
        for page in write.pos / PAGE_BYTES..write.end().div_ceil(PAGE_BYTES) {
            *pages.entry(page).or_default() |= redirtied;
        }
    }
    // Undone newest first, a page's writes give back what the device held.
    let mut newest_first: Vec<&UndoRecord> = unsynced.iter().chain(poisoned).collect();
    newest_first.sort_by_key(|w| Reverse(w.id));
    let mut lost = 0;
    for (page, redirtied) in pages {
        let start = page * PAGE_BYTES;
        let end = (start + PAGE_BYTES).min(len);
        if start >= end {
            continue;
        }
        let fate = if redirtied {
            fate(path, page)
        } else {
            PageFate::Lost
        };
        if fate == PageFate::Kept {
            continue;
        }
        let mut bytes = vec![0u8; usize::try_from(end - start).expect("a page fits in memory")];
        file.read_exact_at(&mut bytes, start)?;
        let current = bytes.clone();
        for write in &newest_first {
            overlay(&mut bytes, start, write);
        }
        if let PageFate::Torn { sectors_kept } = fate {
            for sector in (0..SECTORS_PER_PAGE).filter(|s| sectors_kept & (1 << s) != 0) {
                let from = usize::try_from(sector * SECTOR_BYTES).unwrap_or(usize::MAX);
                let to = (from + SECTOR_BYTES as usize).min(bytes.len());
                if from < to {
                    bytes[from..to].copy_from_slice(&current[from..to]);
                }
            }
        }
        file.write_all_at(&bytes, start)?;
        lost += 1;
    }
    Ok(lost)
}

/// Puts back the bytes `write` replaced, where it overlaps the page at `page_start`; bytes it
/// added past the file's old end become zeroes (the file keeps its length: a later write may
/// lie beyond them).
fn overlay(page: &mut [u8], page_start: u64, write: &UndoRecord) {
    let page_end = page_start + page.len() as u64;
    let from = write.pos.max(page_start);
    let to = write.end().min(page_end);
    for at in from..to {
        let in_page = usize::try_from(at - page_start).expect("inside the page");
        let in_write = usize::try_from(at - write.pos).expect("inside the write");
        page[in_page] = write.old.get(in_write).copied().unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_fate_depends_only_on_the_seed_the_file_and_the_page() {
        let loss = PageLoss {
            seed: 7,
            keep_percent: 50,
            torn_percent: 50,
        };
        let a = Path::new("/a/seg-00000001.log");
        let fates: Vec<_> = (0..64).map(|p| loss.fate(a, p)).collect();
        assert_eq!(fates, (0..64).map(|p| loss.fate(a, p)).collect::<Vec<_>>());
        // Half kept and half of those torn: all three fates occur over 64 pages.
        assert!(fates.contains(&PageFate::Lost));
        assert!(fates.contains(&PageFate::Kept));
        assert!(fates.iter().any(|f| matches!(f, PageFate::Torn { .. })));
        let none = PageLoss {
            keep_percent: 0,
            ..loss
        };
        assert!((0..64).all(|p| none.fate(a, p) == PageFate::Lost));
    }

    #[test]
    fn overlay_puts_back_only_the_overlapping_bytes() {
        let mut page = vec![9u8; 16];
        let write = UndoRecord {
            id: 1,
            pos: 100 + 12,
            len: 6,
            old: vec![1, 2, 3, 4, 5, 6],
        };
        overlay(&mut page, 100, &write);
        assert_eq!(&page[..12], &[9; 12]);
        assert_eq!(&page[12..], &[1, 2, 3, 4]);
    }
}
