//! Reading `ldd` output: the image builders copy a host program with the
//! libraries it links (`xtask` features and Alpine's init, the LUKS oracle).

/// The absolute paths `ldd` prints, each once, in order: `name => /path
/// (addr)` and the loader's `/path (addr)`; the vDSO and libraries
/// `not found` have no file.
pub fn parse(text: &str) -> Vec<String> {
    let mut libs: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            if !libs.iter().any(|l| l == p) {
                libs.push(p.to_owned());
            }
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_once() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibudev.so.1 => /lib/x86_64-linux-gnu/libudev.so.1 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n";
        assert_eq!(
            parse(text),
            [
                "/lib/x86_64-linux-gnu/libudev.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }
}
