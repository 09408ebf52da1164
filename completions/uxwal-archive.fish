complete -c uxwal-archive -l repo -d 'Repository: a directory, file://, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix. uxwal-archive and uxwal-restore take it more than once (archive stores into every one, restore reads from the first that has the file); uxwal-cleanup and uxwal-verify take one' -r
complete -c uxwal-archive -l deadline -d 'Seconds all storage work of this command may take [default: 60, or `deadline` in the file; uxwal-verify: 24 hours]' -r
complete -c uxwal-archive -l config -d 'Configuration file (TOML). Default: /etc/uxwal/uxwal.toml when it exists' -r -F
complete -c uxwal-archive -l encrypt-to -d 'Encrypt archived files to this age recipient (age1...) or to the recipients in this file (absolute path); repeatable (uxwal-archive) [default: encrypt_to in the file]' -r
complete -c uxwal-archive -l digest-key-file -d 'The digest key file (absolute path, mode 0600) that identical duplicates of encrypted files are recognised by; needed with --encrypt-to (uxwal-archive) [default: digest_key_file in the file]' -r -F
complete -c uxwal-archive -l identity -d 'age identity file (absolute path, mode 0600) that encrypted files are read with; repeatable, so that keys can rotate [default: identity_file in the file]' -r -F
complete -c uxwal-archive -l metrics-file -d 'Prometheus text-format file that each run updates, for node_exporter\'s textfile collector (absolute path; see docs/metrics.md) [default: metrics_file in the file]' -r -F
complete -c uxwal-archive -l compress -d 'Compression: none, gzip or zstd [default: zstd]' -r -f -a "none\t'Uncompressed bytes in a zstd frame of raw blocks (`zstd -d` restores them)'
gzip\t'gzip (deflate); `gunzip` restores it'
zstd\t'Zstandard; `zstd -d` restores it'"
complete -c uxwal-archive -l level -d 'Compression level [default: zstd 1, gzip 6]' -r
complete -c uxwal-archive -l parallel -d 'Push ready files ahead: a background worker started by the call archives the files the database has marked ready (archive_status/*.ready), up to N-1 at a time, recorded in the spool so that their own calls only confirm them, with local checks and no request to the store (repositories, identity, the file unchanged by its stamp or SHA-256); 1 turns it off [default: 1 when every repository is a local directory, 4 when one is an object store]' -r
complete -c uxwal-archive -l spool-dir -d 'Spool root, outside the data directory, private to the user running uxwal (mode 0700; anything else is refused with a warning) [default: /var/spool/uxwal when it exists and is the user\'s, else $TMPDIR/uxwal-UID]. Push-ahead keeps one entry of about 300 bytes per file pushed ahead, removed once confirmed or once the database has removed the file, and an empty lock file per file pushed or archived, removed with the file' -r -F
complete -c uxwal-archive -s q -l quiet -d 'Print errors only'
complete -c uxwal-archive -s v -l verbose -d 'Also print what each step does'
complete -c uxwal-archive -l start-encryption -d 'Instead of archiving a file: start encrypting each repository (encrypt_to or --encrypt-to must be set), so that WAL archived from now on is encrypted; files archived before stay readable as they are. Run once, by hand, before archive_command starts encrypting (it refuses to mix plain and encrypted WAL unannounced). Prints what it did per repository'
complete -c uxwal-archive -s h -l help -d 'Print help (see more with \'--help\')'
complete -c uxwal-archive -s V -l version -d 'Print version'
