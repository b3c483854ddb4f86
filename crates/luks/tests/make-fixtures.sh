#!/bin/sh
# Builds small LUKS test containers with cryptsetup and records what cryptsetup says
# about each: the oracle the tests compare against.
#
#   make-fixtures.sh OUTDIR [DATA_KIB]
#
# For every fixture NAME, OUTDIR gets:
#   NAME.img      the container (header, key slots, DATA_KIB KiB of data; default 64)
#   NAME.hdr      the detached header, for fixtures that have one
#   NAME.secret   the passphrase or key file that opens it (exact bytes)
#   NAME.oracle   lines "key HEX" (luksDump --dump-volume-key), "slot N" (the slot the
#                 secret opens), "size BYTES" (the data device's size) and
#                 "table 0 SECTORS crypt CIPHER HEX IV_OFFSET DEV OFFSET [N OPTS...]",
#                 the dm-crypt table cryptsetup loads, built from luksDump's fields
#                 (DEV stands for the data device's major:minor).
# KDF costs are the cheapest cryptsetup accepts, so tests derive keys in milliseconds.
# cryptsetup works on image files directly: no root and no device-mapper needed.
set -eu

out=${1:?usage: make-fixtures.sh OUTDIR [DATA_KIB]}
data_kib=${2:-64}
mkdir -p "$out"
cd "$out"

# A fixed passphrase per fixture keeps failures reproducible; keys and salts still vary.
pbkdf2="--pbkdf pbkdf2 --pbkdf-force-iterations 1000"
argon2id="--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1"
argon2i="--pbkdf argon2i --pbkdf-force-iterations 4 --pbkdf-memory 64 --pbkdf-parallel 2"
small2="--luks2-metadata-size 16k --luks2-keyslots-size 1m"

# make NAME VERSION OFFSET_SECTORS SECRET_KIND CRYPTSETUP_ARGS...
#   SECRET_KIND: pass (a passphrase) or key (a 4096-byte random key file)
make() {
    name=$1 version=$2 offset=$3 kind=$4
    shift 4
    rm -f "$name".img "$name".hdr
    size=$(( offset * 512 + data_kib * 1024 ))
    truncate -s "$size" "$name.img"
    case $kind in
    pass) printf '%s' "passphrase of $name" >"$name.secret" ;;
    key) head -c 4096 /dev/urandom >"$name.secret" ;;
    esac
    hdr="$name.img"
    case " $* " in
    *" --header "*) hdr="$name.hdr" ;;
    esac
    cryptsetup luksFormat --batch-mode --type "luks$version" --key-file "$name.secret" \
        --offset "$offset" "$@" "$name.img" 2>/dev/null
    slot=0
    if [ -n "${second:-}" ]; then
        # A second key slot: the secret file is then the second passphrase.
        printf '%s' "second passphrase of $name" >"$name.secret2"
        cryptsetup luksAddKey --batch-mode --key-file "$name.secret" $second \
            "$hdr" "$name.secret2" 2>/dev/null
        mv "$name.secret2" "$name.secret"
        slot=1
    fi
    dump=$(cryptsetup luksDump --batch-mode --dump-volume-key --key-file "$name.secret" "$hdr")
    key=$(printf '%s\n' "$dump" | awk '
        /^(MK|Volume key) dump:/ { on = 1; sub(/^[^:]*:/, "") }
        on { for (i = 1; i <= NF; i++) k = k $i }
        END { print k }')
    info=$(cryptsetup luksDump "$hdr")
    if [ "$version" = 1 ]; then
        cipher=$(printf '%s\n' "$info" | awk -F'\t' '/^Cipher name:/ { n = $2 } /^Cipher mode:/ { m = $2 } END { print n "-" m }')
        off=$(printf '%s\n' "$info" | awk -F'\t' '/^Payload offset:/ { print $2 }')
        sector=512
    else
        cipher=$(printf '%s\n' "$info" | awk '/^Data segments:/ { d = 1 } d && /cipher:/ { print $2; exit }')
        off=$(( $(printf '%s\n' "$info" | awk '/^Data segments:/ { d = 1 } d && /offset:/ { print $2; exit }') / 512 ))
        sector=$(printf '%s\n' "$info" | awk '/^Data segments:/ { d = 1 } d && /sector:/ { print $2; exit }')
    fi
    sectors=$(( size / 512 - off ))
    opts=""
    if [ "$sector" != 512 ]; then
        opts=" 1 sector_size:$sector"
    fi
    {
        echo "key $key"
        echo "slot $slot"
        echo "size $size"
        echo "table 0 $sectors crypt $cipher $key 0 DEV $off$opts"
    } >"$name.oracle"
    second=""
}

second=""
make luks1-xts256 1 4096 pass --cipher aes-xts-plain64 --key-size 256 --hash sha256 $pbkdf2
make luks1-xts512-sha1 1 4096 pass --cipher aes-xts-plain64 --key-size 512 --hash sha1 $pbkdf2
make luks1-cbc-essiv 1 4096 pass --cipher aes-cbc-essiv:sha256 --key-size 256 --hash sha512 $pbkdf2
make luks1-keyfile 1 4096 key --cipher aes-xts-plain64 --key-size 512 --hash sha256 $pbkdf2
second="$pbkdf2"
make luks1-second-slot 1 4096 pass --cipher aes-xts-plain64 --key-size 256 --hash sha256 $pbkdf2
make luks2-argon2id-xts512 2 4096 pass --cipher aes-xts-plain64 --key-size 512 --sector-size 512 $small2 $argon2id
make luks2-argon2i-xts256-4k 2 4096 pass --cipher aes-xts-plain64 --key-size 256 --sector-size 4096 $small2 $argon2i
make luks2-pbkdf2-cbc-essiv 2 4096 pass --cipher aes-cbc-essiv:sha256 --key-size 256 --hash sha512 --sector-size 512 $small2 $pbkdf2
make luks2-keyfile-4k 2 4096 key --cipher aes-xts-plain64 --key-size 512 --sector-size 4096 $small2 $argon2id
second="$argon2id"
make luks2-second-slot 2 4096 pass --cipher aes-xts-plain64 --key-size 512 --sector-size 512 $small2 $pbkdf2
make luks2-detached 2 0 pass --cipher aes-xts-plain64 --key-size 512 --sector-size 512 $small2 $argon2id --header luks2-detached.hdr
