# uxwal %postun: on erase (not upgrade) remove the spool root the %post
# created; it only holds scratch space.
if [ "$1" = 0 ]; then
    rm -rf /var/spool/uxwal
fi
exit 0
