#!/bin/bash
# Runs on the helper with the unpacked stage3 in $AMIPLAN_ROOT, before anything is written to the
# target volume: any failure here leaves the volume untouched and fails the build.
set -euo pipefail
root="$AMIPLAN_ROOT"

# The whole volume is one ext4 file system labelled `funtoo`.
cat >"$root/etc/fstab" <<'FSTAB'
LABEL=funtoo  /  ext4  noatime  0 1
FSTAB

# DHCP on the first interface, as EC2 expects.
mkdir -p "$root/etc/conf.d"
echo 'template=dhcpcd' >"$root/etc/conf.d/netif.eth0"
ln -sf netif.tmpl "$root/etc/init.d/netif.eth0"
ln -sf /etc/init.d/netif.eth0 "$root/etc/runlevels/default/netif.eth0"
ln -sf /etc/init.d/sshd "$root/etc/runlevels/default/sshd"

# PV-GRUB reads this menu from the first disk; the kernel comes with the stage3's binary kernel.
mkdir -p "$root/boot/grub"
kernel=$(cd "$root/boot" && ls kernel-* vmlinuz-* 2>/dev/null | head -n 1 || true)
initrd=$(cd "$root/boot" && ls initramfs-* 2>/dev/null | head -n 1 || true)
[ -n "$kernel" ] || { echo "the stage3 has no kernel in /boot" >&2; exit 1; }
{
  echo 'default 0'
  echo 'timeout 1'
  echo 'title Funtoo Linux'
  echo 'root (hd0)'
  echo "kernel /boot/$kernel root=LABEL=funtoo console=hvc0"
  if [ -n "$initrd" ]; then echo "initrd /boot/$initrd"; fi
} >"$root/boot/grub/menu.lst"
