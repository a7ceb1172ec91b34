#!/bin/bash
# The boot test: runs on an instance started from the new AMI. Exit 0 passes. What it leaves in
# /var/tmp/amiplan-reports (test.reports) is collected by amiplan, pass or fail.
set -eu
mkdir -p /var/tmp/amiplan-reports
firmware=$([ -d /sys/firmware/efi ] && echo uefi || echo bios)
{
  echo "kernel: $(uname -r)"
  echo "firmware: $firmware"
  echo "root: $(findmnt -n -o SOURCE /)"
  echo "provisioned at: $(cat /etc/amiplan/provisioned-at)"
} > /var/tmp/amiplan-reports/boot.txt
# What the provisioning step and the files: list put into the image are there.
grep -q "amiplan example debian-bootstrap" /etc/amiplan/provisioned-by
test -s /etc/amiplan/provisioned-at
# The root is the partition GRUB was told about, mounted read-write by fstab.
findmnt -n -o SOURCE / | grep -q nvme0n1p3
touch /var/tmp/writable
# The EFI system partition is mounted where fstab says, with GRUB's UEFI loader on it.
findmnt -n -o FSTYPE /boot/efi | grep -q vfat
test -f /boot/efi/EFI/BOOT/BOOTX64.EFI
echo "booted $(uname -r) via $firmware"
