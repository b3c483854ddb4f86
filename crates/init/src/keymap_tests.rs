use super::*;
use std::io::Write;

/// A binary keymap with the given tables; key j of table t is `t * 200 + j`.
fn bmap(tables: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut flags = [0u8; MAX_NR_KEYMAPS];
    for t in tables {
        flags[usize::from(*t)] = 1;
    }
    out.extend_from_slice(&flags);
    for t in tables {
        for j in 0..NR_KEYS as u16 {
            out.extend_from_slice(&(u16::from(*t) * 200 + j).to_ne_bytes());
        }
    }
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The tables present and the entry count, or why the bytes were refused.
type Parsed = Result<(Vec<u8>, usize), BmapError>;

#[test]
fn bmap_parse_table() {
    let whole = bmap(&[0, 1, 255]);
    let mut trailing = bmap(&[2]);
    trailing.extend_from_slice(b"extra");
    let mut flag_two = bmap(&[]);
    flag_two[MAGIC.len() + 3] = 2;
    let none = bmap(&[]);
    let truncated_table = &whole[..whole.len() - 1];
    let t = |what, need, have| Err(BmapError::Truncated { what, need, have });
    // (name, input, expected tables and count or error)
    let cases: Vec<(&str, &[u8], Parsed)> = vec![
        ("empty", b"", t("the magic", 7, 0)),
        ("half magic", b"bkey", t("the magic", 7, 4)),
        ("wrong magic", b"gzkeymap", Err(BmapError::Magic)),
        ("magic only", b"bkeymap", t("the table flags", 263, 7)),
        ("no tables", &none, Ok((vec![], 0))),
        ("three tables", &whole, Ok((vec![0, 1, 255], 3 * NR_KEYS))),
        (
            "cut in the last table",
            truncated_table,
            t("a key table", 263 + 3 * 256, 263 + 3 * 256 - 1),
        ),
        (
            "bytes after the tables are ignored",
            &trailing,
            Ok((vec![2], NR_KEYS)),
        ),
        ("only flag 1 marks a table", &flag_two, Ok((vec![], 0))),
    ];
    for (name, input, want) in cases {
        let got = parse(input).map(|e| {
            let mut tables: Vec<u8> = e.iter().map(|k| k.table).collect();
            tables.dedup();
            (tables, e.len())
        });
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn bmap_entries_are_in_loadkmap_order_with_native_values() {
    let e = parse(&bmap(&[0, 7])).unwrap();
    assert_eq!(
        e[0],
        KbEntry {
            table: 0,
            index: 0,
            value: 0
        }
    );
    assert_eq!(
        e[NR_KEYS + 5],
        KbEntry {
            table: 7,
            index: 5,
            value: 1405
        }
    );
    assert_eq!(e.last().map(|k| k.index), Some(127));
}

#[test]
fn bmap_longer_than_every_table_is_refused() {
    let mut data = bmap(&(0..=255).collect::<Vec<u8>>());
    assert_eq!(data.len(), MAX_LEN);
    assert_eq!(parse(&data).map(|e| e.len()), Ok(MAX_NR_KEYMAPS * NR_KEYS));
    data.push(0);
    assert_eq!(parse(&data), Err(BmapError::TooLong));
}

#[test]
fn keymap_first_regular_file_in_name_order() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    assert!(find(&layout).unwrap().is_none(), "no directory: no keymap");
    let dir = tmp.path().join("etc/keymap");
    std::fs::create_dir_all(dir.join("a-dir.bmap.gz")).unwrap();
    std::fs::write(dir.join("us.bmap.gz"), b"").unwrap();
    std::fs::write(dir.join("fr.bmap.gz"), b"").unwrap();
    assert_eq!(find(&layout).unwrap(), Some(dir.join("fr.bmap.gz")));
}

#[test]
fn keymap_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.bmap.gz");
    std::fs::write(&plain, bmap(&[0])).unwrap();
    let err = read(&plain).unwrap_err();
    assert!(matches!(err, KeymapError::Gunzip { .. }), "{err:?}");
    assert!(err.to_string().contains("plain.bmap.gz"), "{err}");

    let short = tmp.path().join("short.bmap.gz");
    let whole = bmap(&[0]);
    std::fs::write(&short, gz(&whole[..100])).unwrap();
    let err = read(&short).unwrap_err();
    assert!(
        matches!(
            err,
            KeymapError::Format {
                source: BmapError::Truncated { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let text = crate::failure::chain(&err);
    assert!(
        text.contains("short.bmap.gz") && text.contains("truncated"),
        "{text}"
    );

    let good = tmp.path().join("us.bmap.gz");
    std::fs::write(&good, gz(&whole)).unwrap();
    assert_eq!(read(&good).unwrap().len(), NR_KEYS);
}

/// Regression: a gzip bomb is read no further than the largest keymap.
#[test]
fn keymap_gzip_bomb_stops_after_max_len() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = tmp.path().join("bomb.bmap.gz");
    let mut data = bmap(&[]);
    data.resize(64 << 20, 0);
    std::fs::write(&bomb, gz(&data)).unwrap();
    let err = read(&bomb).unwrap_err();
    assert!(
        matches!(
            err,
            KeymapError::Format {
                source: BmapError::TooLong,
                ..
            }
        ),
        "{err:?}"
    );
}
