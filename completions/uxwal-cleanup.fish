complete -c uxwal-cleanup -l repo -d 'Repository: a directory, file://, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix. uxwal-archive and uxwal-restore take it more than once (archive stores into every one, restore reads from the first that has the file); uxwal-cleanup and uxwal-verify take one' -r
complete -c uxwal-cleanup -l deadline -d 'Seconds all storage work of this command may take [default: 60, or `deadline` in the file; uxwal-verify: 24 hours]' -r
complete -c uxwal-cleanup -l config -d 'Configuration file (TOML). Default: /etc/uxwal/uxwal.toml when it exists' -r -F
complete -c uxwal-cleanup -l encrypt-to -d 'Encrypt archived files to this age recipient (age1...) or to the recipients in this file (absolute path); repeatable (uxwal-archive) [default: encrypt_to in the file]' -r
complete -c uxwal-cleanup -l digest-key-file -d 'The digest key file (absolute path, mode 0600) that identical duplicates of encrypted files are recognised by; needed with --encrypt-to (uxwal-archive) [default: digest_key_file in the file]' -r -F
complete -c uxwal-cleanup -l identity -d 'age identity file (absolute path, mode 0600) that encrypted files are read with; repeatable, so that keys can rotate [default: identity_file in the file]' -r -F
complete -c uxwal-cleanup -l metrics-file -d 'Prometheus text-format file that each run updates, for node_exporter\'s textfile collector (absolute path; see docs/metrics.md) [default: metrics_file in the file]' -r -F
complete -c uxwal-cleanup -s x -l strip-extension -d 'Strip this extension from file names before checking them (e.g. .gz), as pg_archivecleanup does for archives written with it' -r
complete -c uxwal-cleanup -l retain-backups -d 'Keep every WAL file the newest N base backups need, and everything after; remove older WAL. Only backups that can reach the newest timeline count (one taken on a branch abandoned by a point-in-time recovery cannot). Instead of OLDEST_KEPT' -r
complete -c uxwal-cleanup -l older-than -d 'Remove only files archived longer ago than DURATION (e.g. 7d, 12h, 30m, 1d12h), never what a retained backup needs (the newest one unless --retain-backups says more). Instead of OLDEST_KEPT' -r
complete -c uxwal-cleanup -s q -l quiet -d 'Print errors only'
complete -c uxwal-cleanup -s v -l verbose -d 'Also print what each step does'
complete -c uxwal-cleanup -s n -l dry-run -d 'Print the files that would be removed, one per line on stdout; remove nothing'
complete -c uxwal-cleanup -s d -l debug -d 'Print what is kept and removed on stderr (as --verbose; pg_archivecleanup\'s -d)'
complete -c uxwal-cleanup -s b -l clean-backup-history -d 'Also remove backup history files (.backup) older than the cutoff'
complete -c uxwal-cleanup -s h -l help -d 'Print help (-? as in pg_archivecleanup)'
complete -c uxwal-cleanup -s V -l version -d 'Print version'
