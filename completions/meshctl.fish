# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_meshctl_global_optspecs
    string join \n h/help V/version
end

function __fish_meshctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_meshctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_meshctl_using_subcommand
    set -l cmd (__fish_meshctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c meshctl -n "__fish_meshctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_needs_command" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "validate" -d 'Check rule files: syntax, schema and Istio\'s semantics'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "schema" -d 'Print the JSON schema of rule documents'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s f -l filename -d 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s o -l output -d 'Output format' -r -f -a "text\t'rustc-style diagnostics with the source line'
json\t'one JSON object per line (diagnostics, then a summary)'
github\t'GitHub Actions annotations'
sarif\t'SARIF 2.1.0, for code scanning'"
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l kinds -d 'Check only these kinds (comma-separated; any alias, e.g. egressrules,rr)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s j -l jobs -d 'Worker threads (default: one per core)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l color -d 'When to colour text output' -r -f -a "auto\t''
always\t''
never\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l strict -d 'Treat warnings as errors'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s q -l quiet -d 'Print only problems: no summary line when all is well'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand schema" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -l short -d 'Print only the version number'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate schema completion version help" -f -a "validate" -d 'Check rule files: syntax, schema and Istio\'s semantics'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate schema completion version help" -f -a "schema" -d 'Print the JSON schema of rule documents'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate schema completion version help" -f -a "completion" -d 'Print a shell completion script'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate schema completion version help" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate schema completion version help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
