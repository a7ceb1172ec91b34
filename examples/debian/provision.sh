#!/bin/sh
# Runs on the helper against the unpacked system ($AMIPLAN_ROOT), before the boot loader is
# installed. amiplan writes /etc/fstab (when the system has no root entry) and GRUB itself.
set -eu
echo debian-bootstrap > "$AMIPLAN_ROOT/etc/hostname"
# The boot test reads this back from the running instance.
date -u +%Y-%m-%dT%H:%M:%SZ > "$AMIPLAN_ROOT/etc/amiplan/provisioned-at"
