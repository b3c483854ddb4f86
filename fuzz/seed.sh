#!/bin/sh
# Writes small valid seed inputs to fuzz/corpus/<target>/ (gitignored), then copies the
# committed regression inputs from fuzz/regressions/<target>/ next to them.
# Needs python3; mkfs.*, sfdisk, xorriso, mksquashfs, mkswap, openssl, tar and cryptsetup are used
# when present and skipped with a note otherwise. Safe to re-run: files are overwritten.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() {
    if command -v "$1" >/dev/null 2>&1; then
        return 0
    fi
    echo "seed.sh: $1 not found, skipping its seeds" >&2
    return 1
}

for t in cmdline uevent kmod_indexes probe enc unpack dhcp http_response findfs_args luks_header pem_key bmap ere fstab net_config nbd_handshake; do
    mkdir -p "$corpus/$t"
done

# --- cmdline: real Alpine boot lines ----------------------------------------------
c="$corpus/cmdline"
printf '%s' 'BOOT_IMAGE=/boot/vmlinuz-lts modules=loop,squashfs,sd-mod,usb-storage quiet console=tty0 console=ttyS0,115200 alpine_dev=LABEL=ALPINE modloop=/boot/modloop-lts apkovl=LABEL=APKOVL:/host.apkovl.tar.gz' >"$c/iso"
printf '%s\n' 'initrd=initramfs-virt ip=dhcp alpine_repo=http://dl-cdn.alpinelinux.org/alpine/v3.21/main modloop=http://10.0.2.2/modloop-virt apkovl=http://10.0.2.2/{MAC}.apkovl.tar.gz?uuid={UUID} ssh_key=https://10.0.2.2/key.pub BOOTIF=01-52-54-00-12-34-56' >"$c/netboot"
printf '%s' 'root=UUID=0b5d6c3a-2f7e-4e0a-9a43-58b8c4f0c1de rootfstype=ext4 rootflags=ro,noatime modules=sd-mod,usb-storage,ext4 nomodeset usbdelay=5 debug_init s390x_net=qeth_l2,0.0.0800,0.0.0801,0.0.0802 dasd=0.0.0100 ip=10.0.2.15::10.0.2.2:255.255.255.0:host:eth0:none:10.0.2.3' >"$c/rootdisk"
printf '%s' 'cryptroot=/dev/sda2 cryptdm=root cryptkey nbd=10.0.0.1:10809 init=/sbin/init init_args="single quiet" overlaytmpfs overlaytmpfsflags=size=50% noautodetect_serial uevent_buf_size=2097152 blacklist=floppy,pcspkr' >"$c/misc"

# --- findfs_args: nlplug-findfs command lines, NUL-separated ----------------------
f="$corpus/findfs_args"
printf -- '-p\0/sbin/mdev\0-t\0003000\0-b\0/tmp/repositories\0-a\0/tmp/apkovls' >"$f/diskless"
printf -- '-dn\0-c\0UUID=abcd\0-H\0/boot/hdr\0-k\0/crypto_keyfile.bin:512:64\0-m\0root\0-o\0004096\0-D\0UUID=root' >"$f/crypt"
printf -- '--apkovls-file=/tmp/a\0--filter\0block\0--\0sda1\0-x' >"$f/long"

# --- uevent: kernel netlink datagrams (header, then NUL-terminated KEY=VALUE) ------------
u="$corpus/uevent"
printf 'add@/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda1\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda1\0SUBSYSTEM=block\0MAJOR=253\0MINOR=1\0DEVNAME=vda1\0DEVTYPE=partition\0DISKSEQ=9\0PARTN=1\0SEQNUM=1421\0' >"$u/block-add"
printf 'add@/devices/pci0000:00/0000:00:03.0\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:03.0\0SUBSYSTEM=pci\0DRIVER=virtio-pci\0PCI_CLASS=20000\0PCI_ID=1AF4:1000\0PCI_SUBSYS_ID=1AF4:0001\0PCI_SLOT_NAME=0000:00:03.0\0MODALIAS=pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\0SEQNUM=812\0' >"$u/pci-modalias"
printf 'remove@/devices/virtual/net/lo\0ACTION=remove\0DEVPATH=/devices/virtual/net/lo\0SUBSYSTEM=net\0INTERFACE=lo\0IFINDEX=1\0SEQNUM=2\0' >"$u/net-remove"
printf 'libudev\0\376\355\312\376\050\0\0\0\050\0\0\0\0\0\0\0ACTION=add\0' >"$u/libudev"

# --- kmod_indexes: alias NUL dep NUL softdep -----------------------------------------
{
    printf '%s\n' '# Aliases extracted from modules themselves.' \
        'alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_net' \
        'alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk' \
        'alias fs-ext4 ext4' 'alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage' \
        'alias char-major-10-237 loop' 'alias scsi:t-0x00* sd_mod'
    printf '\0'
    printf '%s\n' 'kernel/fs/ext4/ext4.ko.gz: kernel/fs/jbd2/jbd2.ko.gz kernel/fs/mbcache.ko.gz kernel/lib/crc16.ko.gz' \
        'kernel/fs/jbd2/jbd2.ko.gz:' 'kernel/fs/mbcache.ko.gz:' 'kernel/lib/crc16.ko.gz:' \
        'kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko.xz kernel/drivers/net/net_failover.ko.xz' \
        'kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz' \
        'kernel/net/core/failover.ko.xz:' 'kernel/drivers/block/virtio_blk.ko.zst:' \
        'kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko' \
        'kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko' 'kernel/drivers/scsi/scsi_mod.ko:'
    printf '\0'
    printf '%s\n' '# Soft dependencies extracted from modules themselves.' \
        'softdep ext4 pre: crc32c' 'softdep usb_storage pre: uas post: sd_mod' \
        'options loop max_loop=8' 'blacklist pcspkr' 'install foo /bin/true' 'alias my_net virtio_net'
} >"$corpus/kmod_indexes/alpine"
printf 'alias a b\nalias b a\n\0a.ko: b.ko\nb.ko: a.ko\n\0softdep a pre: b\nsoftdep b pre: a\n' >"$corpus/kmod_indexes/cycle"

# --- probe: heads of real filesystem and partition-table images --------------------------
p="$corpus/probe"
mkfs_seed() { # name bytes-to-keep image-MiB command...
    name=$1 keep=$2 mib=$3
    shift 3
    have "$1" || return 0
    rm -f "$work/img"
    truncate -s "${mib}M" "$work/img"
    if "$@" "$work/img" >/dev/null 2>&1; then
        head -c "$keep" "$work/img" >"$p/$name"
    else
        echo "seed.sh: $1 failed, no $name seed" >&2
    fi
}
mkfs_seed ext4 65536 1 mkfs.ext4 -q -F -L ALPINE -U 0b5d6c3a-2f7e-4e0a-9a43-58b8c4f0c1de
mkfs_seed ext2 65536 1 mkfs.ext2 -q -F -L boot
mkfs_seed vfat 65536 1 mkfs.vfat -n ALPINE -i 1234ABCD
mkfs_seed fat32 65536 40 mkfs.vfat -F 32 -n APKOVL
mkfs_seed exfat 65536 8 mkfs.exfat -L stick
mkfs_seed swap 65536 1 mkswap -L swap
mkfs_seed xfs 65536 300 mkfs.xfs -q -L data
mkfs_seed btrfs 69632 120 mkfs.btrfs -q -L pool
mkfs_seed f2fs 65536 64 mkfs.f2fs -q -l flash
if have mksquashfs; then
    mkdir -p "$work/sq/etc" && echo alpine >"$work/sq/etc/hostname"
    mksquashfs "$work/sq" "$work/sq.img" -quiet -noappend >/dev/null 2>&1 && cp "$work/sq.img" "$p/squashfs"
fi
if have xorriso; then
    xorriso -as mkisofs -quiet -V ALPINE_ISO -o "$work/iso.img" "$work/sq" >/dev/null 2>&1 &&
        head -c 65536 "$work/iso.img" >"$p/iso9660"
fi
if have sfdisk; then
    for label in dos gpt; do
        rm -f "$work/disk"
        truncate -s 4M "$work/disk"
        printf 'label: %s\n,1M\n,1M\n,\n' "$label" | sfdisk -q "$work/disk" >/dev/null 2>&1 &&
            head -c 65536 "$work/disk" >"$p/$label"
    done
fi

# --- enc: openssl enc containers (the target's password is "fuzz") -----------------------
e="$corpus/enc"
printf 'small overlay payload\n' >"$work/plain"
if have openssl; then
    # openssl warns that EVP_BytesToKey is deprecated; that is the format lbu writes.
    exec 3>&2 2>/dev/null
    openssl enc -aes-256-cbc -salt -pass pass:fuzz -md sha256 -in "$work/plain" -out "$e/salted-fuzz"
    openssl enc -aes-256-cbc -salt -pass pass:x -md sha256 -in "$work/plain" -out "$e/salted-x"
    openssl enc -aes-256-cbc -nosalt -pass pass:fuzz -md sha256 -in "$work/plain" -out "$e/nosalt-fuzz"
    : | openssl enc -aes-256-cbc -salt -pass pass:fuzz -md sha256 -out "$e/empty-fuzz"
    exec 2>&3 3>&-
fi

# --- unpack: real gzip'd tars (verbatim) and raw tars prefixed with T (harness gzips) ----
un="$corpus/unpack"
if have tar && have gzip; then
    mkdir -p "$work/ovl/etc/apk" "$work/ovl/root" "$work/ovl/bin"
    echo host >"$work/ovl/etc/hostname"
    printf 'alpine-base\nopenssh\n' >"$work/ovl/etc/apk/world"
    ln -s /usr/share/zoneinfo/UTC "$work/ovl/etc/localtime"
    printf '#!/bin/sh\n' >"$work/ovl/bin/hello" && chmod 755 "$work/ovl/bin/hello"
    ln "$work/ovl/etc/hostname" "$work/ovl/root/hostname.link"
    chmod 700 "$work/ovl/root"
    tar -C "$work/ovl" --owner=0 --group=0 --numeric-owner -b 1 -cf "$work/ovl.tar" etc root bin
    gzip -9 -n -c "$work/ovl.tar" >"$un/lbu.apkovl.tar.gz"
    { printf T; cat "$work/ovl.tar"; } >"$un/T-lbu"
    tar -C "$work/ovl" --format=pax -b 1 -cf - etc | gzip -c >"$un/pax.tar.gz"
fi
# Hazard shapes from the security reference (section 12, A1-A19): each should be rejected
# or clamped, never write outside the sysroot.
python3 - "$un" <<'PY'
import io, sys, tarfile

out = sys.argv[1]

def build(name, members, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for kind, path, extra in members:
            info = tarfile.TarInfo(path)
            data = None
            if kind == "file":
                data = extra.encode()
                info.size = len(data)
                info.mode = 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = extra
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = extra
            elif kind == "hard":
                info.type = tarfile.LNKTYPE
                info.linkname = extra
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = 1, 1
            elif kind == "suid":
                data = b"x"
                info.size, info.mode, info.uid = 1, 0o4755, 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    # Drop tarfile's record padding after the two zero end blocks: shorter seeds, faster runs.
    data = buf.getvalue().rstrip(b"\0")
    data += bytes(-len(data) % 512 + 1024)
    with open(f"{out}/T-{name}", "wb") as f:
        f.write(b"T" + data)

build("dotdot", [("file", "../escape", "x"), ("file", "etc/ok", "y")])
build("abs", [("file", "/etc/motd", "motd")])
build("sym-up", [("sym", "x", "../../.."), ("file", "x/pwned", "p")])
build("preexisting-up", [("file", "up/pwned", "p"), ("dir", "up", 0o777)])
build("usrmerge", [("file", "bin/sh", "#!"), ("file", "usr/bin/env", "e")])
build("sym-dir", [("sym", "d", "/"), ("dir", "d", 0o777)])
build("hard-out", [("hard", "h", "../outside/sentinel"), ("file", "h", "data")])
build("chain", [("sym", "a/b/c/up", "../.."), ("sym", "a/b/escape", "c/up/../.."), ("hard", "exfil", "a/b/escape/x")])
build("collide", [("file", "p", "1"), ("dir", "p", 0o755), ("sym", "p", "/"), ("file", "p", "2")])
build("special", [("chr", "dev/mem", None), ("suid", "usr/bin/x", None), ("dir", "root", 0o777)])
build("pax-long", [("file", "a" * 200 + "/" + "b" * 120, "long"), ("sym", "l", "t" * 150)], tarfile.PAX_FORMAT)
# Issue 8 shapes: usr-merge aliases (the harness's root has bin -> usr/bin), chains,
# skipped members with long names, deep paths, staging-like names.
build("alias-file-dir", [("file", "etc/hostname", "new"), ("file", "bin/foo", "f"), ("dir", "usr/bin/foo", 0o750)])
build("alias-child", [("file", "bin/foo", "f"), ("file", "usr/bin/foo/x", "x")])
build("alias-hardlink", [("file", "bin/foo", "f"), ("hard", "usr/bin/foo", "bin/foo")])
build("hard-chain", [("file", "l0", "d")] + [("hard", f"l{i}", f"l{i - 1}") for i in range(1, 60)])
build("skipped-many", [("chr", "\x01" * 400 + str(i), None) for i in range(12)] + [("file", "ok", "1")], tarfile.PAX_FORMAT)
build("deep", [("file", "d/" * 1000 + "f", "deep")], tarfile.PAX_FORMAT)
build("stage-names", [("file", ".apkovl-stage-0000000000000000", "s"), ("file", ".apkovl-1-1", "t"), ("hard", ".apkovl-1-2", ".apkovl-1-1")])

def raw_header(name, flag, size, patch=None, mode=0o644, uid=0, gid=0):
    b = bytearray(512)
    b[0:len(name)] = name
    b[100:108] = b"%07o\0" % mode
    for off, v in ((108, uid), (116, gid)):
        b[off:off + 8] = (b"%07o\0" % v) if v < 0o7777777 else b"\x80" + v.to_bytes(7, "big")
    b[124:136] = b"%011o\0" % size
    b[136:148] = b"%011o\0" % 1700000000
    b[156] = flag
    b[257:265] = b"ustar  \0"
    if patch:
        patch(b)
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)

def pad(data):
    return data + bytes(-len(data) % 512)

def write_raw(name, blocks):
    with open(f"{out}/T-{name}", "wb") as f:
        f.write(b"T" + b"".join(blocks) + bytes(1024))

def extended(b):
    b[482] = 1

write_raw("gnu-sparse-ext", [
    raw_header(b"var/sparse", ord("S"), 1024, extended),
    pad(b"00000010000\0"),
    b"s" * 1024,
    raw_header(b"etc/after", ord("0"), 2), pad(b"ok"),
])
write_raw("ids-minus-one", [
    raw_header(b"usr/bin/sg", ord("0"), 1, mode=0o2755, gid=0xFFFFFFFF), pad(b"x"),
    raw_header(b"usr/bin/su", ord("0"), 1, mode=0o4755, uid=0xFFFFFFFF), pad(b"x"),
])
write_raw("non-utf8", [raw_header(b"etc/caf\xe9", ord("0"), 1), pad(b"x")])
PY

# --- dhcp: BOOTREPLY OFFER and ACK --------------------------------------------------------
python3 - "$corpus/dhcp" <<'PY'
import struct, sys

out = sys.argv[1]

def reply(msg_type, extra=b""):
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, 0x3903F326, 0, 0x8000,
                       bytes(4), bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]), bytes(4),
                       bytes.fromhex("525400123456") + bytes(10), b"", b"")
    opts = bytes([53, 1, msg_type, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 81, 128,
                  1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 6, 8, 10, 0, 2, 3, 1, 1, 1, 1,
                  12, 4]) + b"host" + bytes([15, 7]) + b"example" + extra + bytes([255])
    return head + bytes([99, 130, 83, 99]) + opts

for name, kind in (("offer", 2), ("ack", 5), ("nak", 6)):
    with open(f"{out}/{name}", "wb") as f:
        f.write(reply(kind))
with open(f"{out}/split-option", "wb") as f:
    f.write(reply(5, bytes([6, 4, 8, 8, 8, 8, 0, 0, 6, 4, 8, 8, 4, 4])))
PY

# --- http_response ----------------------------------------------------------------------
h="$corpus/http_response"
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: 5\r\n\r\nhello' >"$h/length"
printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n' >"$h/chunked"
printf 'HTTP/1.1 301 Moved Permanently\r\nLocation: http://10.0.2.2/new.apkovl.tar.gz\r\nContent-Length: 0\r\n\r\n' >"$h/redirect"
printf 'HTTP/1.0 200 OK\r\nServer: busybox\r\n\r\nbody until close' >"$h/close"
printf 'HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found' >"$h/404"

# --- luks_header: headers cryptsetup wrote (key slot areas included), cheap ones, JSON
l="$corpus/luks_header"
printf '%s' '{"keyslots":{},"tokens":{},"segments":{"0":{"type":"crypt","offset":"4096","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}},"digests":{},"config":{"json_size":"12288","keyslots_size":"16384"}}' >"$l/json"
if have cryptsetup; then
    sh "$here/../crates/luks/tests/make-fixtures.sh" "$work/luks" 4 >/dev/null 2>&1
    for f in "$work"/luks/*.img "$work"/luks/*.hdr; do
        n=$(basename "$f")
        # The headers and the first key slot area; the data is not read.
        head -c 600000 "$f" >"$l/$n"
    done
    rm -f "$l/luks2-detached.img"
fi
# Headers with costs cryptsetup refuses to write (one PBKDF2 iteration, 8 KiB Argon2)
# that the target's passphrase opens, so mutations reach the merge and digest check.
if python3 -c 'import cryptography' 2>/dev/null; then
    python3 "$here/luks_seeds.py" "$l"
else
    echo "seed.sh: python3 cryptography not found, skipping the cheap LUKS seeds" >&2
fi

# --- setconsole patterns (ere): PATTERN NUL TEXT, as README.md's autodetect_serial examples
e="$corpus/ere"; mkdir -p "$e"
n=0
for p in 'dmi:.*:svnQEMU:.*' '^dmi:bvn[A-Za-z]+:' 'pn(APU|apu)[0-9]?' '[[:alpha:]]{2,4}x?$' 'a(b|c)*d{1,3}' '\bword\B' 'QEMU'; do
    n=$((n + 1))
    printf '%s\0dmi:bvnSeaBIOS:bvr1.16:svnQEMU:pnStandardPC:pvrpc-q35-7.2:' "$p" > "$e/seed-$n"
done

# --- pem_key: public keys as /etc/alpinit/keys holds them (SPKI RSA and Ed25519, PKCS#1 RSA)
k="$corpus/pem_key"; mkdir -p "$k"
if have openssl; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key" 2>/dev/null
    openssl pkey -in "$work/rsa.key" -pubout -out "$k/spki-rsa.pem"
    openssl rsa -in "$work/rsa.key" -RSAPublicKey_out -out "$k/pkcs1-rsa.pem" 2>/dev/null
    openssl genpkey -algorithm ED25519 -out "$work/ed.key"
    openssl pkey -in "$work/ed.key" -pubout -out "$k/spki-ed25519.pem"
fi

# --- bmap: busybox binary keymaps (magic, 256 table flags, NR_KEYS u16 per flagged table)
b="$corpus/bmap"; mkdir -p "$b"
python3 - "$b" <<'PY'
import struct, sys
out = sys.argv[1]
for name, tables in (("none", []), ("one", [0]), ("three", [0, 1, 4])):
    flags = bytearray(256)
    for t in tables:
        flags[t] = 1
    keys = b"".join(struct.pack("=H", (0xF000 | (t << 8) | k) & 0xFFFF) for t in tables for k in range(128))
    open(f"{out}/{name}", "wb").write(b"bkeymap" + bytes(flags) + keys)
PY

# --- fstab: the new root's /etc/fstab (setup-disk's, hand-written, /proc/mounts-like) -----
# printf formats: \t is a tab, \\040 an fstab escape (backslash, 040) in the file.
fs="$corpus/fstab"
printf 'UUID=0b5d6c3a-2f7e-4e0a-9a43-58b8c4f0c1de\t/\text4\trw,relatime 0 1
UUID=5c1e7a2b-9d0f-4b3e-8a61-2f4d9c0e7b15\t/boot\text4\trw,relatime 0 2
UUID=8f3b2d6e-1c4a-4f7b-9e2d-6a5c3b1f0e98\tswap\tswap\tdefaults\t0 0
/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0
/dev/usbdisk\t/media/usb\tvfat\tnoauto\t0 0
tmpfs\t/tmp\ttmpfs\tnosuid,nodev\t0\t0
' >"$fs/alpine-default"
printf '# /etc/fstab: static file system information.
#
# <file system>  <mount point>  <type>  <options>  <dump>  <pass>
LABEL=root  /  xfs  defaults,noatime  0  1
  # indented comment
PARTUUID=6b1c2f0a-02  /usr  ext4  ro,nodev,x-systemd.automount  0  2
LABEL=My\\040Data\t/media/my\\040data\tvfat\trw,uid=1000,utf8,comment=x-gvfs-show\t0\t0
/srv/export  /home/share  none  bind,ro  0  0
/dev/mapper/vg-swap none swap sw 0 0
tmpfs / tmpfs size=2g,mode=0755
proc /proc

   \t
/dev/vdb1 /mnt/tab\\011in\\134name ext2 nosuid,noexec,sync,dirsync,nodiratime extra fields 0 0
' >"$fs/commented"
printf 'UUID=1 / ext4 rw 0 1\r\nLABEL=boot /boot vfat ro,noauto\r\n#UUID=2 /old ext4 rw 0 0\r\n' >"$fs/crlf"
printf '%s\n' 'rootfs / rootfs rw 0 0' 'proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0' \
    'devtmpfs /dev devtmpfs rw,nosuid,relatime,size=10240k,nr_inodes=255655,mode=755 0 0' \
    '/dev/sda1 /media/my\040stick vfat ro,relatime,fmask=0022,codepage=437 0 0' \
    'overlay /sysroot overlay rw,lowerdir=/lower,upperdir=/upper,workdir=/work 0 0' >"$fs/proc-mounts"

# --- net_config: selector byte ('0' mactab, '1' /etc/modules, '2' ip=, '3' BOOTIF=,
# '4' URL, '5' MAC, '6' base URL NUL Location, '7' every parser on the same text) ---------
nc="$corpus/net_config"
printf '0eth-lan 52:54:00:12:34:56\n# name  mac\nwan0\t52:54:00:AB:CD:EF # uplink\nbad/name 52:54:00:00:00:01\neth1 52:54:00:00:00\n' >"$nc/mactab"
printf '1af_packet\nipv6\n# /etc/modules\nloop   max_loop=8   foo=bar  \nnbd\tmax_part=8 # network block devices\nusb-storage\n' >"$nc/modules"
i=0
for v in 'dhcp' '10.0.0.2::10.0.0.1:255.255.255.0:host:eth0:none' \
    '10.0.2.15::10.0.2.2:255.255.255.0::eth0:none:10.0.2.3:1.1.1.1' \
    ':::::eth0:dhcp' '::::::on' 'off' '192.168.1.10:::::eth1' '172.16.0.9::0.0.0.0:255.255.255.252:::off::9.9.9.9' \
    '10.0.0.1:::255.0.255.0' ':::::../../etc'; do
    i=$((i + 1))
    printf '2%s' "$v" >"$nc/ip-$i"
done
printf '3%s' '01-52-54-00-12-34-56' >"$nc/bootif-pxe"
printf '3%s' '02:00:00:00:00:03' >"$nc/bootif-colon"
printf '3%s' '01-AA-BB-CC-DD-EE' >"$nc/bootif-short"
i=0
for v in 'http://10.0.2.2:8000/{MAC}.apkovl.tar.gz' 'https://[fe80::1]/x' \
    'https://dl-cdn.alpinelinux.org/alpine/v3.21/main' 'HTTPS://Example.COM:8443/a/b?uuid={UUID}#frag' \
    'http://h?x' 'ftp://10.0.2.2/x' 'http://u:p@h:0/'; do
    i=$((i + 1))
    printf '4%s' "$v" >"$nc/url-$i"
done
printf '5%s' '52:54:00:12:34:56' >"$nc/mac"
printf '5%s\n' ' AA:BB:CC:DD:EE:FF' >"$nc/mac-upper"
printf '6https://h:8443/dir/file?q=1\0../up/./x?z#f' >"$nc/join-relative"
printf '6http://10.0.2.2/a\0//other:9/y' >"$nc/join-network-path"
printf '6http://h/x/y\0HTTPS://Mirror/alpine/' >"$nc/join-absolute"
printf '7%s\n' 'eth0 52:54:00:12:34:56' >"$nc/all"

# --- nbd_handshake: everything an NBD server sends (greeting, option replies) ----------
python3 - "$corpus/nbd_handshake" <<'PY'
import struct, sys

out = sys.argv[1]

def greeting(flags):
    return b"NBDMAGIC" + b"IHAVEOPT" + struct.pack(">H", flags)

def reply(kind, data=b"", option=7):
    return struct.pack(">QIII", 0x3E889045565A9, option, kind, len(data)) + data

export = struct.pack(">QH", 1 << 30, 0x0003)  # 1 GiB, HAS_FLAGS | READ_ONLY
seeds = {
    # Fixed newstyle and NO_ZEROES; NBD_OPT_GO answered with NBD_INFO_NAME, NBD_INFO_EXPORT, ACK.
    "go": greeting(3) + reply(3, struct.pack(">H", 1) + b"root")
    + reply(3, struct.pack(">H", 0) + export) + reply(1),
    # NBD_OPT_GO unknown to the server: NBD_OPT_EXPORT_NAME's answer with the 124 zero bytes.
    "go-unsup": greeting(1) + reply(0x80000001, b"unknown option") + export + bytes(124),
    # Plain newstyle: NBD_OPT_EXPORT_NAME straight away.
    "newstyle": greeting(0) + export + bytes(124),
}
for name, data in seeds.items():
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
PY

# --- committed regression inputs --------------------------------------------------------
if [ -d "$here/regressions" ]; then
    for dir in "$here"/regressions/*/; do
        [ -d "$dir" ] || continue
        t=$(basename "$dir")
        mkdir -p "$corpus/$t"
        cp "$dir"* "$corpus/$t/" 2>/dev/null || true
    done
fi

for t in "$corpus"/*/; do
    printf '%-14s %3d seeds\n' "$(basename "$t")" "$(find "$t" -type f | wc -l)"
done
