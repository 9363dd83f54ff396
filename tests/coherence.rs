//! Coherence through client caches on the GlusterFS test volume (two client mounts), through
//! the library without MPI.

use brlock_testkit::gluster_dirs;

/// `O_DIRECT` reads (the locked reads through client caches) return exactly the file's bytes
/// at any offset and length, through both GlusterFS clients, although the file system wants
/// aligned direct I/O. A reader that ignored the alignment fails here with `EINVAL`, as the
/// first version did through one of the two mounts.
#[test]
fn direct_reads_match_the_file_on_glusterfs() {
    use brlock::io::coherence::{DirectReader, ReadAt};
    let (a, b) = gluster_dirs("direct-reads");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(a.join("f"), &data).expect("write the file");
    for dir in [&a, &b] {
        let path = dir.join("f");
        let reader = DirectReader::open(&path).expect("GlusterFS accepts O_DIRECT reads");
        for (offset, len) in [
            (0usize, 300_000usize),
            (1, 1),
            (3, 40_000),
            (4097, 12_345),
            (131_071, 140_000),
            (299_990, 100),
        ] {
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                let n = reader
                    .read_at(&mut buf[got..], (offset + got) as u64)
                    .unwrap_or_else(|e| panic!("{}: read at {offset}: {e}", path.display()));
                if n == 0 {
                    break;
                }
                got += n;
            }
            let end = (offset + len).min(data.len());
            assert_eq!(
                got,
                end - offset,
                "{}: offset {offset} len {len}",
                path.display()
            );
            assert!(
                buf[..got] == data[offset..end],
                "{}: offset {offset} len {len}",
                path.display()
            );
        }
    }
}
