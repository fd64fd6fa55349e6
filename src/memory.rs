//! Giving back the pages of code that only ran at start.
//!
//! Starting touches code all over the binary once (argument and config parsing, logging
//! set-up, TLS roots, the first JWKS fetch), and the kernel maps file pages around every
//! fault in 64 KiB windows, so a freshly started sidecar has nearly all of its 8 MiB of
//! machine code resident, though requests use a small part of it. Once the sidecar is
//! ready, [`release_startup_code`] drops this process's mappings of its executable code
//! (`MADV_DONTNEED`); the pages requests need come back on the next fault, from the page
//! cache, with no copy. Only the binary's read-only, never-written mappings are touched
//! (the `r-xp` and `r--p` segments with no private copy-on-write pages), so no data can be
//! lost: `MADV_DONTNEED` on a private file mapping without anonymous pages only forgets the
//! page-table entries.

/// What [`release_startup_code`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Resident bytes of the mappings it released, as `/proc/self/smaps` counted them.
    pub bytes: u64,
    /// Mappings released.
    pub mappings: usize,
}

/// One mapping of `/proc/self/smaps`, the fields this needs.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    path: String,
    rss_kb: u64,
    anonymous_kb: u64,
}

/// Parses `/proc/<pid>/smaps` text. Lines it does not understand are skipped.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = fields.next().unwrap_or("").to_string();
                // offset, device, inode, then the path (which may hold spaces).
                let path = fields.skip(3).collect::<Vec<_>>().join(" ");
                out.push(Mapping {
                    start,
                    end,
                    perms,
                    path,
                    rss_kb: 0,
                    anonymous_kb: 0,
                });
                continue;
            }
        }
        let Some(m) = out.last_mut() else { continue };
        let kb = fields
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Rss:" => m.rss_kb = kb,
            "Anonymous:" => m.anonymous_kb = kb,
            _ => {}
        }
    }
    out
}

/// The mappings that are safe to release: the executable's own, read-only (code or
/// constants, never the relocated or writable ones), with no private (anonymous,
/// copy-on-write) pages in them. Dirty pages are fine: a binary written moments ago has
/// them in the page cache, which keeps them; only this process's mapping is dropped.
fn releasable<'a>(maps: &'a [Mapping], exe: &str) -> impl Iterator<Item = &'a Mapping> + 'a {
    let exe = exe.to_string();
    maps.iter().filter(move |m| {
        m.path == exe
            && (m.perms == "r-xp" || m.perms == "r--p")
            && m.anonymous_kb == 0
            && m.rss_kb > 0
    })
}

/// Drops this process's resident pages of its own executable's read-only mappings.
/// Best effort: on any error (no `/proc`, an old kernel) nothing is released.
pub fn release_startup_code() -> Released {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return Released::default();
    };
    let Some(exe) = exe.to_str() else {
        return Released::default();
    };
    let maps = parse_smaps(&smaps);
    let mut released = Released::default();
    for m in releasable(&maps, exe) {
        // SAFETY: the range is one whole mapping of the executable, read-only, with no
        // anonymous (copy-on-write) pages: MADV_DONTNEED only unmaps its page-cache pages,
        // and the next access maps the same file contents again. No Rust object lives there.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released.bytes += m.rss_kb * 1024;
            released.mappings += 1;
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0300000 r--p 00000000 fd:01 1234 /usr/local/bin/cognito-sidecar
Size:               3072 kB
Rss:                2048 kB
Private_Dirty:        12 kB
Anonymous:             0 kB
55d0c0300000-55d0c0b00000 r-xp 00300000 fd:01 1234 /usr/local/bin/cognito-sidecar
Rss:                7000 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0c0b00000-55d0c0b40000 r--p 00b00000 fd:01 1234 /usr/local/bin/cognito-sidecar
Rss:                 256 kB
Private_Dirty:       256 kB
Anonymous:           256 kB
55d0c0b40000-55d0c0b50000 rw-p 00b40000 fd:01 1234 /usr/local/bin/cognito-sidecar
Rss:                  64 kB
Private_Dirty:        64 kB
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1300 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 [heap]
Rss:                 900 kB
Anonymous:           900 kB
";

    #[test]
    fn only_the_executables_clean_read_only_mappings_are_released() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 6);
        let chosen: Vec<_> = releasable(&maps, "/usr/local/bin/cognito-sidecar")
            .map(|m| (m.perms.as_str(), m.rss_kb))
            .collect();
        // Not the relocated read-only segment (it has private copies), not the writable
        // one, not libc, not the heap; a dirty page-cache page (a binary just written) is
        // no obstacle.
        assert_eq!(chosen, vec![("r--p", 2048), ("r-xp", 7000)]);
    }

    #[test]
    fn a_path_with_spaces_is_kept_whole() {
        let maps = parse_smaps(
            "1000-2000 r-xp 00000000 fd:01 7 /opt/my apps/cognito-sidecar\nRss: 4 kB\n",
        );
        assert_eq!(maps[0].path, "/opt/my apps/cognito-sidecar");
        assert_eq!(maps[0].rss_kb, 4);
    }

    #[test]
    fn releasing_in_this_process_keeps_it_working() {
        // The test binary's own code: released, then run again (this very function).
        let r = release_startup_code();
        assert!(r.mappings >= 1, "{r:?}");
        assert!(r.bytes > 0);
        let again = release_startup_code();
        assert!(again.mappings >= 1);
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
