#!/bin/sh
# lddtree as Alpine's mkinitfs expects it, over Debian's (pax-utils,
# python): non-ELF arguments (modprobe.d/*.conf) are listed as they are,
# and each listed symlink is followed by its target (libz.so.1 ->
# libz.so.1.3.1), which Debian's lists without. Absolute link targets are
# resolved inside the -R root.
root=
prev=
for a; do
	[ "$prev" = -R ] && root=$a
	prev=$a
done

# PATH, then each link of its chain, one a line.
chain() {
	f=$1
	n=0
	echo "$f"
	while [ -L "$f" ] && [ $n -lt 8 ]; do
		t=$(readlink "$f")
		case "$t" in
		/*) f="${root%/}$t" ;;
		*) f="${f%/*}/$t" ;;
		esac
		echo "$f"
		n=$((n + 1))
	done
}

{
	/usr/bin/python3 /usr/bin/lddtree --skip-non-elfs "$@"
	prev=
	for a; do
		case "$prev:$a" in
		-R:* | *:-*) ;;
		*)
			last=$(chain "$a" | tail -n 1)
			if [ -f "$last" ] && [ "$(head -c 4 "$last" | tail -c 3)" != ELF ]; then
				echo "$a"
			fi
			;;
		esac
		prev=$a
	done
} | while read -r f; do
	chain "$f"
done
