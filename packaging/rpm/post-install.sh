# uxwal %post (install and upgrade): /etc/uxwal/uxwal.toml is installed
# root-owned, mode 0640 (it may hold storage credentials), but the database's
# user runs uxwal and must read it: an unreadable default configuration is an
# error, not silently skipped. Hand it to the database's group when that
# exists and the file still belongs to root's group.
conf=/etc/uxwal/uxwal.toml
if [ -f "$conf" ] && [ "$(stat -c %G "$conf")" = root ]; then
    for group in postgres uxdb; do
        if getent group "$group" >/dev/null; then
            chgrp "$group" "$conf"
            break
        fi
    done
fi
# The spool root (see packaging/debian/postinst): owned by the database's
# user, mode 0700, created once.
spool=/var/spool/uxwal
for user in postgres uxdb; do
    if getent passwd "$user" >/dev/null; then
        if [ ! -e "$spool" ]; then
            mkdir -m 0700 "$spool"
            chown "$user:" "$spool"
        fi
        break
    fi
done
exit 0
