complete -c uxwal-verify -l repo -d 'Repository: a directory, file://, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix. uxwal-archive and uxwal-restore take it more than once (archive stores into every one, restore reads from the first that has the file); uxwal-cleanup and uxwal-verify take one' -r
complete -c uxwal-verify -l deadline -d 'Seconds all storage work of this command may take [default: 60, or `deadline` in the file; uxwal-verify: 24 hours]' -r
complete -c uxwal-verify -l config -d 'Configuration file (TOML). Default: /etc/uxwal/uxwal.toml when it exists' -r -F
complete -c uxwal-verify -l encrypt-to -d 'Encrypt archived files to this age recipient (age1...) or to the recipients in this file (absolute path); repeatable (uxwal-archive) [default: encrypt_to in the file]' -r
complete -c uxwal-verify -l digest-key-file -d 'The digest key file (absolute path, mode 0600) that identical duplicates of encrypted files are recognised by; needed with --encrypt-to (uxwal-archive) [default: digest_key_file in the file]' -r -F
complete -c uxwal-verify -l identity -d 'age identity file (absolute path, mode 0600) that encrypted files are read with; repeatable, so that keys can rotate [default: identity_file in the file]' -r -F
complete -c uxwal-verify -l metrics-file -d 'Prometheus text-format file that each run updates, for node_exporter\'s textfile collector (absolute path; see docs/metrics.md) [default: metrics_file in the file]' -r -F
complete -c uxwal-verify -l timeline -d 'Only timeline TLI (decimal)' -r
complete -c uxwal-verify -l from -d 'Only segments from SEGMENT on (a 24-digit segment name; its timeline part is ignored)' -r
complete -c uxwal-verify -l to -d 'Only segments up to SEGMENT (a 24-digit segment name; its timeline part is ignored)' -r
complete -c uxwal-verify -l backup -d 'Only what restoring one base backup to the latest WAL reads: its LABEL, its .backup file name, or "newest"' -r
complete -c uxwal-verify -s j -l jobs -d 'Objects read at once [default: CPU cores; more on object storage]' -r
complete -c uxwal-verify -l spool-dir -d 'Spool root of the uxwal-archive whose backlog of owed copies (require) is listed for this repository [default: spool_dir, else as uxwal-archive]' -r -F
complete -c uxwal-verify -s q -l quiet -d 'Print errors only'
complete -c uxwal-verify -s v -l verbose -d 'Also print what each step does'
complete -c uxwal-verify -l quick -d 'Names and sizes from the listing only: no segment is read, so checksums and headers are not checked (.history and .backup files are still read)'
complete -c uxwal-verify -l json -d 'Print the report as JSON (schema: docs/verify-json.md)'
complete -c uxwal-verify -s h -l help -d 'Print help (see more with \'--help\')'
complete -c uxwal-verify -s V -l version -d 'Print version'
