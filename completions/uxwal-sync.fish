complete -c uxwal-sync -l from -d 'The repository to copy from: a directory, file://, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix' -r
complete -c uxwal-sync -l to -d 'The repository to copy to (created when new, with FROM\'s identity and encryption marker)' -r
complete -c uxwal-sync -l from-segment -d 'Only segments and .partial files from SEGMENT on (a 24-digit segment name; its timeline part is ignored); .history and .backup files are always copied' -r
complete -c uxwal-sync -s j -l jobs -d 'Files copied at once [default: 4 when either repository is object storage, else 1]' -r
complete -c uxwal-sync -l deadline -d 'Seconds all storage work of this command may take [default: 24 hours]' -r
complete -c uxwal-sync -l config -d 'Configuration file (TOML): its s3, azure and gcs tables, limits and identity_file apply to both repositories. Default: /etc/uxwal/uxwal.toml when it exists' -r -F
complete -c uxwal-sync -l identity -d 'age identity file (absolute path, mode 0600) that encrypted files are checked with (they are copied encrypted); repeatable [default: identity_file in the file]' -r -F
complete -c uxwal-sync -l dry-run -d 'List what would be copied (on stdout), and write nothing'
complete -c uxwal-sync -l json -d 'Print the summary as one JSON object on stdout (fields: README, uxwal-sync)'
complete -c uxwal-sync -s q -l quiet -d 'Print errors only'
complete -c uxwal-sync -s v -l verbose -d 'Also print a line per file, terminal or not'
complete -c uxwal-sync -s h -l help -d 'Print help (see more with \'--help\')'
complete -c uxwal-sync -s V -l version -d 'Print version'
