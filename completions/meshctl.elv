
use builtin;
use str;

set edit:completion:arg-completer[meshctl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'meshctl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'meshctl'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand validate 'Check rule files: syntax, schema and Istio''s semantics'
            cand create 'Create rules from files (every document is validated first; nothing is written if any is invalid)'
            cand get 'Show rules from the store'
            cand replace 'Replace existing rules from files (every document is validated first)'
            cand apply 'Create or update rules from files (every document is validated first)'
            cand delete 'Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)'
            cand context 'Manage named stores and their credentials'
            cand serve 'Serve the config store API over HTTP(S)'
            cand store 'Manage whole stores (copy one into another)'
            cand proxy 'Run a local sidecar-style proxy that enforces the rules: egress and version routing'
            cand check 'Check whether the EgressRules allow a destination'
            cand token 'Manage API tokens for `meshctl serve`'
            cand schema 'Print the JSON schema of rule documents'
            cand completion 'Print a shell completion script'
            cand version 'Print meshctl''s version'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;validate'= {
            cand -f 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand --filename 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --kinds 'Check only these kinds (comma-separated; any alias, e.g. egressrules,rr)'
            cand -j 'Worker threads (default: one per core)'
            cand --jobs 'Worker threads (default: one per core)'
            cand --color 'When to colour text output'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into directories recursively'
            cand --recursive 'Descend into directories recursively'
            cand --strict 'Treat warnings as errors'
            cand -q 'Print only problems: no summary line when all is well'
            cand --quiet 'Print only problems: no summary line when all is well'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;create'= {
            cand -f 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand --filename 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand -n 'The namespace of rules whose file names none (a file naming another one is an error)'
            cand --namespace 'The namespace of rules whose file names none (a file naming another one is an error)'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into directories recursively'
            cand --recursive 'Descend into directories recursively'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;get'= {
            cand -n 'The namespace to look in'
            cand --namespace 'The namespace to look in'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -A 'Look in every namespace'
            cand --all-namespaces 'Look in every namespace'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;replace'= {
            cand -f 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand --filename 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand -n 'The namespace of rules whose file names none (a file naming another one is an error)'
            cand --namespace 'The namespace of rules whose file names none (a file naming another one is an error)'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into directories recursively'
            cand --recursive 'Descend into directories recursively'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;apply'= {
            cand -f 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand --filename 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand -n 'The namespace of rules whose file names none (a file naming another one is an error)'
            cand --namespace 'The namespace of rules whose file names none (a file naming another one is an error)'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into directories recursively'
            cand --recursive 'Descend into directories recursively'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;delete'= {
            cand -f 'Delete the rules these files define (files, directories, `-`; only kind, namespace and name are read)'
            cand --filename 'Delete the rules these files define (files, directories, `-`; only kind, namespace and name are read)'
            cand -n 'The namespace (for -f: of rules whose file names none)'
            cand --namespace 'The namespace (for -f: of rules whose file names none)'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into directories recursively'
            cand --recursive 'Descend into directories recursively'
            cand --all 'Delete every rule of the kind in the namespace'
            cand -A 'With --all: in every namespace'
            cand --all-namespaces 'With --all: in every namespace'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;context'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List the contexts, marking the current one (tokens are never shown)'
            cand use 'Make NAME the current context'
            cand add 'Add a context'
            cand remove 'Remove a context (the built-in `default` stays)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;context;list'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;context;use'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;context;add'= {
            cand --store 'The store: sqlite:PATH, https://HOST:PORT, or http://127.0.0.1:PORT'
            cand --token-file 'Read the token from this file (`-` for standard input)'
            cand --ca-cert 'Verify the server against these CA certificates (PEM) instead of the system''s roots'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand --no-token 'The store needs no token'
            cand --overwrite 'Replace a context of the same name'
            cand --use 'Also make it the current context'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;context;remove'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;context;help'= {
            cand list 'List the contexts, marking the current one (tokens are never shown)'
            cand use 'Make NAME the current context'
            cand add 'Add a context'
            cand remove 'Remove a context (the built-in `default` stays)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;context;help;list'= {
        }
        &'meshctl;context;help;use'= {
        }
        &'meshctl;context;help;add'= {
        }
        &'meshctl;context;help;remove'= {
        }
        &'meshctl;context;help;help'= {
        }
        &'meshctl;serve'= {
            cand --listen 'The address to listen on, HOST:PORT (port 0: any free port; the line printed at start-up says which)'
            cand --tokens 'Accept only the bearer tokens listed in FILE (written by `meshctl token create`)'
            cand --tls-cert 'Serve HTTPS with this PEM certificate chain (needs --tls-key)'
            cand --tls-key 'The PEM private key of --tls-cert'
            cand --etcd-ca 'With --store etcd://...: verify the etcd members against this PEM CA bundle (and speak https)'
            cand --etcd-cert 'With --store etcd://...: the client certificate to present to etcd (needs --etcd-key)'
            cand --etcd-key 'The PEM private key of --etcd-cert'
            cand --etcd-prefix 'With --store etcd://...: every key lives under this prefix'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;store'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand copy 'Copy every rule from one store to another'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;store;copy'= {
            cand --from 'The store to copy from, in any form --store takes (a sqlite:PATH must be an existing file), or the name of a context'
            cand --to 'The store to copy into, in any form --store takes (a sqlite:PATH is created when missing), or the name of a context'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand --prune 'Also delete the rules that are in the destination but not in the source'
            cand --dry-run 'Only say what would be done: nothing is written (and a missing sqlite: destination is not created)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;store;help'= {
            cand copy 'Copy every rule from one store to another'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;store;help;copy'= {
        }
        &'meshctl;store;help;help'= {
        }
        &'meshctl;proxy'= {
            cand -f 'Rules from these files or directories instead of the store; re-read when they change'
            cand --filename 'Rules from these files or directories instead of the store; re-read when they change'
            cand --listen 'The proxy port: HTTP forward proxy (absolute-form and CONNECT) and SOCKS5 (port 0: any free port; the start-up lines say which)'
            cand --admin 'The admin port: /metrics, /config_dump, /ready'
            cand --forward 'Accept connections on LOCAL (ADDR:PORT, or PORT on 127.0.0.1) and carry them to HOST:PORT when an EgressRule allows it (repeatable)'
            cand --upstream-ca 'Verify upstream TLS (for `https` egress ports) against this PEM bundle instead of the system roots'
            cand --log-format 'Access log format'
            cand --access-log 'Write the access log to this file (appended) instead of standard output (`-`)'
            cand --workers 'Worker threads (default: one per CPU); forwards to an IP address are relayed by as many threads of their own'
            cand --connect-timeout 'How long to wait for an upstream to accept a connection (then 504, or a close for TCP)'
            cand --drain-timeout 'On SIGTERM, how long open connections may take to finish'
            cand --services 'Service registry (YAML: services with a port and endpoints with labels); requests to these services are routed by the RouteRules and DestinationPolicies. Re-read when it changes'
            cand --source-labels 'Labels of the workload the proxy speaks for, matched by `match.source` and `sourceLabels` (KEY=VALUE,...)'
            cand --source 'The service the proxy speaks for, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels, in namespace default)'
            cand --proxy-uid 'With --print-iptables: the uid the proxy runs as (its own traffic is not captured)'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into -f directories recursively'
            cand --recursive 'Descend into -f directories recursively'
            cand --transparent 'Also take traffic redirected to the proxy port by iptables/nft (its original destination is read with SO_ORIGINAL_DST; HTTP Host and TLS SNI are read for host rules)'
            cand --no-access-log 'Write no access log at all (the counters on /metrics still count everything)'
            cand --print-iptables 'Print the iptables commands that capture outbound TCP for --transparent, and exit'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;check'= {
            cand -f 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand --filename 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)'
            cand -o 'Output format'
            cand --output 'Output format'
            cand --services 'Service registry (as for `meshctl proxy --services`): an http:// DEST naming one of its services is checked against the RouteRules and DestinationPolicies instead'
            cand -H 'A request header for RouteRule matches, `NAME: VALUE` (repeatable)'
            cand --header 'A request header for RouteRule matches, `NAME: VALUE` (repeatable)'
            cand --method 'The request method for RouteRule matches'
            cand --source-labels 'Labels of the source workload (KEY=VALUE,...), as for `meshctl proxy --source-labels`'
            cand --source 'The source service, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels)'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -R 'Descend into directories recursively'
            cand --recursive 'Descend into directories recursively'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;token'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a token and add its hash to a tokens file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;token;create'= {
            cand -n 'A namespace the token may use; repeat for several (default: every namespace, "*")'
            cand --namespace 'A namespace the token may use; repeat for several (default: every namespace, "*")'
            cand --tokens-file 'The tokens file to add the token to'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand --read-only 'Allow only reads (get, list, watch); default: reads and writes'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;token;help'= {
            cand create 'Create a token and add its hash to a tokens file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;token;help;create'= {
        }
        &'meshctl;token;help;help'= {
        }
        &'meshctl;schema'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;completion'= {
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;version'= {
            cand -o 'Output format'
            cand --output 'Output format'
            cand --store 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context'
            cand --context 'Use this named context instead of the current one (see `meshctl context`)'
            cand --short 'Print only the version number'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;help'= {
            cand validate 'Check rule files: syntax, schema and Istio''s semantics'
            cand create 'Create rules from files (every document is validated first; nothing is written if any is invalid)'
            cand get 'Show rules from the store'
            cand replace 'Replace existing rules from files (every document is validated first)'
            cand apply 'Create or update rules from files (every document is validated first)'
            cand delete 'Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)'
            cand context 'Manage named stores and their credentials'
            cand serve 'Serve the config store API over HTTP(S)'
            cand store 'Manage whole stores (copy one into another)'
            cand proxy 'Run a local sidecar-style proxy that enforces the rules: egress and version routing'
            cand check 'Check whether the EgressRules allow a destination'
            cand token 'Manage API tokens for `meshctl serve`'
            cand schema 'Print the JSON schema of rule documents'
            cand completion 'Print a shell completion script'
            cand version 'Print meshctl''s version'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;help;validate'= {
        }
        &'meshctl;help;create'= {
        }
        &'meshctl;help;get'= {
        }
        &'meshctl;help;replace'= {
        }
        &'meshctl;help;apply'= {
        }
        &'meshctl;help;delete'= {
        }
        &'meshctl;help;context'= {
            cand list 'List the contexts, marking the current one (tokens are never shown)'
            cand use 'Make NAME the current context'
            cand add 'Add a context'
            cand remove 'Remove a context (the built-in `default` stays)'
        }
        &'meshctl;help;context;list'= {
        }
        &'meshctl;help;context;use'= {
        }
        &'meshctl;help;context;add'= {
        }
        &'meshctl;help;context;remove'= {
        }
        &'meshctl;help;serve'= {
        }
        &'meshctl;help;store'= {
            cand copy 'Copy every rule from one store to another'
        }
        &'meshctl;help;store;copy'= {
        }
        &'meshctl;help;proxy'= {
        }
        &'meshctl;help;check'= {
        }
        &'meshctl;help;token'= {
            cand create 'Create a token and add its hash to a tokens file'
        }
        &'meshctl;help;token;create'= {
        }
        &'meshctl;help;schema'= {
        }
        &'meshctl;help;completion'= {
        }
        &'meshctl;help;version'= {
        }
        &'meshctl;help;help'= {
        }
    ]
    $completions[$command]
}
