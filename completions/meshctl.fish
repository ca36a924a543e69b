# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_meshctl_global_optspecs
    string join \n store= context= h/help V/version
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

complete -c meshctl -n "__fish_meshctl_needs_command" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_needs_command" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_needs_command" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "validate" -d 'Check rule files: syntax, schema and Istio\'s semantics'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "create" -d 'Create rules from files (every document is validated first; nothing is written if any is invalid)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "get" -d 'Show rules from the store'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "replace" -d 'Replace existing rules from files (every document is validated first)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "apply" -d 'Create or update rules from files (every document is validated first)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "delete" -d 'Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "context" -d 'Manage named stores and their credentials'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "serve" -d 'Serve the config store API over HTTP(S)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "store" -d 'Manage whole stores (copy one into another)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "proxy" -d 'Run a local sidecar-style proxy that enforces the rules: egress and version routing'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "check" -d 'Check whether the EgressRules allow a destination'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "token" -d 'Manage API tokens for `meshctl serve`'
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
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l strict -d 'Treat warnings as errors'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s q -l quiet -d 'Print only problems: no summary line when all is well'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -s f -l filename -d 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -s n -l namespace -d 'The namespace of rules whose file names none (a file naming another one is an error)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand create" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -s n -l namespace -d 'The namespace to look in' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -s o -l output -d 'Output format' -r -f -a "short\t'a table: NAME, KIND, NAMESPACE, AGE'
wide\t'the table with a one-line summary of each rule\'s spec'
yaml\t'YAML documents separated by `---`'
json\t'one JSON object, or a `kind: List` of them'
name\t'`egress-rule/mysql` lines, for scripts'"
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -s A -l all-namespaces -d 'Look in every namespace'
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand get" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -s f -l filename -d 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -s n -l namespace -d 'The namespace of rules whose file names none (a file naming another one is an error)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand replace" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -s f -l filename -d 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -s n -l namespace -d 'The namespace of rules whose file names none (a file naming another one is an error)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand apply" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s f -l filename -d 'Delete the rules these files define (files, directories, `-`; only kind, namespace and name are read)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s n -l namespace -d 'The namespace (for -f: of rules whose file names none)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -l all -d 'Delete every rule of the kind in the namespace'
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s A -l all-namespaces -d 'With --all: in every namespace'
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand delete" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -f -a "list" -d 'List the contexts, marking the current one (tokens are never shown)'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -f -a "use" -d 'Make NAME the current context'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -f -a "add" -d 'Add a context'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -f -a "remove" -d 'Remove a context (the built-in `default` stays)'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and not __fish_seen_subcommand_from list use add remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from list" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from list" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from use" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from use" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from use" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from use" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l store -d 'The store: sqlite:PATH, https://HOST:PORT, or http://127.0.0.1:PORT' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l token-file -d 'Read the token from this file (`-` for standard input)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l ca-cert -d 'Verify the server against these CA certificates (PEM) instead of the system\'s roots' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l no-token -d 'The store needs no token'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l overwrite -d 'Replace a context of the same name'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -l use -d 'Also make it the current context'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from remove" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from remove" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the contexts, marking the current one (tokens are never shown)'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from help" -f -a "use" -d 'Make NAME the current context'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a context'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a context (the built-in `default` stays)'
complete -c meshctl -n "__fish_meshctl_using_subcommand context; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l listen -d 'The address to listen on, HOST:PORT (port 0: any free port; the line printed at start-up says which)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l tokens -d 'Accept only the bearer tokens listed in FILE (written by `meshctl token create`)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this PEM certificate chain (needs --tls-key)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l tls-key -d 'The PEM private key of --tls-cert' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l etcd-ca -d 'With --store etcd://...: verify the etcd members against this PEM CA bundle (and speak https)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l etcd-cert -d 'With --store etcd://...: the client certificate to present to etcd (needs --etcd-key)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l etcd-key -d 'The PEM private key of --etcd-cert' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l etcd-prefix -d 'With --store etcd://...: every key lives under this prefix' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand serve" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and not __fish_seen_subcommand_from copy help" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and not __fish_seen_subcommand_from copy help" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and not __fish_seen_subcommand_from copy help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and not __fish_seen_subcommand_from copy help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and not __fish_seen_subcommand_from copy help" -f -a "copy" -d 'Copy every rule from one store to another'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and not __fish_seen_subcommand_from copy help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l from -d 'The store to copy from, in any form --store takes (a sqlite:PATH must be an existing file), or the name of a context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l to -d 'The store to copy into, in any form --store takes (a sqlite:PATH is created when missing), or the name of a context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s o -l output -d 'Output format' -r -f -a "text\t'the updated and pruned rules, then a line with the counts'
json\t'one JSON object with the counts'"
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l prune -d 'Also delete the rules that are in the destination but not in the source'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -l dry-run -d 'Only say what would be done: nothing is written (and a missing sqlite: destination is not created)'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from copy" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "copy" -d 'Copy every rule from one store to another'
complete -c meshctl -n "__fish_meshctl_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -s f -l filename -d 'Rules from these files or directories instead of the store; re-read when they change' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l listen -d 'The proxy port: HTTP forward proxy (absolute-form and CONNECT) and SOCKS5 (port 0: any free port; the start-up lines say which)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l admin -d 'The admin port: /metrics, /config_dump, /ready' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l forward -d 'Accept connections on LOCAL (ADDR:PORT, or PORT on 127.0.0.1) and carry them to HOST:PORT when an EgressRule allows it (repeatable)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l upstream-ca -d 'Verify upstream TLS (for `https` egress ports) against this PEM bundle instead of the system roots' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l log-format -d 'Access log format' -r -f -a "text\t'One line of words and key=value pairs'
json\t'One JSON object per line'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l access-log -d 'Write the access log to this file (appended) instead of standard output (`-`)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l workers -d 'Worker threads (default: one per CPU); forwards to an IP address are relayed by as many threads of their own' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l connect-timeout -d 'How long to wait for an upstream to accept a connection (then 504, or a close for TCP)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l drain-timeout -d 'On SIGTERM, how long open connections may take to finish' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l services -d 'Service registry (YAML: services with a port and endpoints with labels); requests to these services are routed by the RouteRules and DestinationPolicies. Re-read when it changes' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l source-labels -d 'Labels of the workload the proxy speaks for, matched by `match.source` and `sourceLabels` (KEY=VALUE,...)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l source -d 'The service the proxy speaks for, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels, in namespace default)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l proxy-uid -d 'With --print-iptables: the uid the proxy runs as (its own traffic is not captured)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -s R -l recursive -d 'Descend into -f directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l transparent -d 'Also take traffic redirected to the proxy port by iptables/nft (its original destination is read with SO_ORIGINAL_DST; HTTP Host and TLS SNI are read for host rules)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l no-access-log -d 'Write no access log at all (the counters on /metrics still count everything)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -l print-iptables -d 'Print the iptables commands that capture outbound TCP for --transparent, and exit'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s f -l filename -d 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s o -l output -d 'Output format' -r -f -a "text\t'`allowed: ...` or `denied: ...`, with notes and hints'
json\t'one JSON object: destination, allowed, rule, protocol, matched'"
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l services -d 'Service registry (as for `meshctl proxy --services`): an http:// DEST naming one of its services is checked against the RouteRules and DestinationPolicies instead' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s H -l header -d 'A request header for RouteRule matches, `NAME: VALUE` (repeatable)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l method -d 'The request method for RouteRule matches' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l source-labels -d 'Labels of the source workload (KEY=VALUE,...), as for `meshctl proxy --source-labels`' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l source -d 'The source service, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s R -l recursive -d 'Descend into directories recursively'
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and not __fish_seen_subcommand_from create help" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and not __fish_seen_subcommand_from create help" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and not __fish_seen_subcommand_from create help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and not __fish_seen_subcommand_from create help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and not __fish_seen_subcommand_from create help" -f -a "create" -d 'Create a token and add its hash to a tokens file'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and not __fish_seen_subcommand_from create help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -s n -l namespace -d 'A namespace the token may use; repeat for several (default: every namespace, "*")' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -l tokens-file -d 'The tokens file to add the token to' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -l read-only -d 'Allow only reads (get, list, watch); default: reads and writes'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a token and add its hash to a tokens file'
complete -c meshctl -n "__fish_meshctl_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand schema" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand schema" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand schema" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "text\t''
json\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -l store -d 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -l context -d 'Use this named context instead of the current one (see `meshctl context`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -l short -d 'Print only the version number'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "validate" -d 'Check rule files: syntax, schema and Istio\'s semantics'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "create" -d 'Create rules from files (every document is validated first; nothing is written if any is invalid)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "get" -d 'Show rules from the store'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "replace" -d 'Replace existing rules from files (every document is validated first)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "apply" -d 'Create or update rules from files (every document is validated first)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "delete" -d 'Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "context" -d 'Manage named stores and their credentials'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "serve" -d 'Serve the config store API over HTTP(S)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "store" -d 'Manage whole stores (copy one into another)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "proxy" -d 'Run a local sidecar-style proxy that enforces the rules: egress and version routing'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "check" -d 'Check whether the EgressRules allow a destination'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "token" -d 'Manage API tokens for `meshctl serve`'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "schema" -d 'Print the JSON schema of rule documents'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "completion" -d 'Print a shell completion script'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from validate create get replace apply delete context serve store proxy check token schema completion version help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from context" -f -a "list" -d 'List the contexts, marking the current one (tokens are never shown)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from context" -f -a "use" -d 'Make NAME the current context'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from context" -f -a "add" -d 'Add a context'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from context" -f -a "remove" -d 'Remove a context (the built-in `default` stays)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "copy" -d 'Copy every rule from one store to another'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "create" -d 'Create a token and add its hash to a tokens file'
