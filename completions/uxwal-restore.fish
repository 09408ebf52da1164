complete -c uxwal-restore -l repo -d 'Repository: a directory, file://, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix. uxwal-archive and uxwal-restore take it more than once (archive stores into every one, restore reads from the first that has the file); uxwal-cleanup and uxwal-verify take one' -r
complete -c uxwal-restore -l deadline -d 'Seconds all storage work of this command may take [default: 60, or `deadline` in the file; uxwal-verify: 24 hours]' -r
complete -c uxwal-restore -l config -d 'Configuration file (TOML). Default: /etc/uxwal/uxwal.toml when it exists' -r -F
complete -c uxwal-restore -l encrypt-to -d 'Encrypt archived files to this age recipient (age1...) or to the recipients in this file (absolute path); repeatable (uxwal-archive) [default: encrypt_to in the file]' -r
complete -c uxwal-restore -l digest-key-file -d 'The digest key file (absolute path, mode 0600) that identical duplicates of encrypted files are recognised by; needed with --encrypt-to (uxwal-archive) [default: digest_key_file in the file]' -r -F
complete -c uxwal-restore -l identity -d 'age identity file (absolute path, mode 0600) that encrypted files are read with; repeatable, so that keys can rotate [default: identity_file in the file]' -r -F
complete -c uxwal-restore -l metrics-file -d 'Prometheus text-format file that each run updates, for node_exporter\'s textfile collector (absolute path; see docs/metrics.md) [default: metrics_file in the file]' -r -F
complete -c uxwal-restore -l on-error -d 'What an error other than "not found" does: auto (abort during point-in-time recovery, missing on a standby), abort (exit 200), missing (exit 1) [default: auto]' -r -f -a "auto\t'`abort` during point-in-time recovery (`recovery.signal` without `standby.signal` in the current directory), `missing` on a standby'
abort\t'Retry briefly, then exit 200 so the database stops recovery'
missing\t'Exit 1 at once, as for a missing file (the database tries again later)'"
complete -c uxwal-restore -l prefetch -d 'Fetch up to N following segments of the same timeline in the background into the spool, where later calls find them verified; 0 turns it off [default: 8 when the first repository is object storage, 0 for a directory]. The spool holds at most N segments per archive, and at most spool_max_bytes' -r
complete -c uxwal-restore -l spool-dir -d 'Spool root, outside the data directory, private to the user running uxwal (mode 0700; anything else is refused with a warning) [default: /var/spool/uxwal when it exists and is the user\'s, else $TMPDIR/uxwal-$UID]' -r -F
complete -c uxwal-restore -s q -l quiet -d 'Print errors only'
complete -c uxwal-restore -s v -l verbose -d 'Also print what each step does'
complete -c uxwal-restore -s h -l help -d 'Print help (see more with \'--help\')'
complete -c uxwal-restore -s V -l version -d 'Print version'
