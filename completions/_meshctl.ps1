
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'meshctl' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'meshctl'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'meshctl' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check rule files: syntax, schema and Istio''s semantics')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create rules from files (every document is validated first; nothing is written if any is invalid)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show rules from the store')
            [CompletionResult]::new('replace', 'replace', [CompletionResultType]::ParameterValue, 'Replace existing rules from files (every document is validated first)')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Create or update rules from files (every document is validated first)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)')
            [CompletionResult]::new('context', 'context', [CompletionResultType]::ParameterValue, 'Manage named stores and their credentials')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the config store API over HTTP(S)')
            [CompletionResult]::new('store', 'store', [CompletionResultType]::ParameterValue, 'Manage whole stores (copy one into another)')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Run a local sidecar-style proxy that enforces the rules: egress and version routing')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check whether the EgressRules allow a destination')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage API tokens for `meshctl serve`')
            [CompletionResult]::new('schema', 'schema', [CompletionResultType]::ParameterValue, 'Print the JSON schema of rule documents')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print meshctl''s version')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;validate' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--kinds', '--kinds', [CompletionResultType]::ParameterName, 'Check only these kinds (comma-separated; any alias, e.g. egressrules,rr)')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Worker threads (default: one per core)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Worker threads (default: one per core)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour text output')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Treat warnings as errors')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only problems: no summary line when all is well')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only problems: no summary line when all is well')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;create' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The namespace of rules whose file names none (a file naming another one is an error)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The namespace of rules whose file names none (a file naming another one is an error)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;get' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The namespace to look in')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The namespace to look in')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-A', '-A ', [CompletionResultType]::ParameterName, 'Look in every namespace')
            [CompletionResult]::new('--all-namespaces', '--all-namespaces', [CompletionResultType]::ParameterName, 'Look in every namespace')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;replace' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The namespace of rules whose file names none (a file naming another one is an error)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The namespace of rules whose file names none (a file naming another one is an error)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;apply' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The namespace of rules whose file names none (a file naming another one is an error)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The namespace of rules whose file names none (a file naming another one is an error)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;delete' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Delete the rules these files define (files, directories, `-`; only kind, namespace and name are read)')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Delete the rules these files define (files, directories, `-`; only kind, namespace and name are read)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'The namespace (for -f: of rules whose file names none)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'The namespace (for -f: of rules whose file names none)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Delete every rule of the kind in the namespace')
            [CompletionResult]::new('-A', '-A ', [CompletionResultType]::ParameterName, 'With --all: in every namespace')
            [CompletionResult]::new('--all-namespaces', '--all-namespaces', [CompletionResultType]::ParameterName, 'With --all: in every namespace')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;context' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the contexts, marking the current one (tokens are never shown)')
            [CompletionResult]::new('use', 'use', [CompletionResultType]::ParameterValue, 'Make NAME the current context')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a context')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a context (the built-in `default` stays)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;context;list' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;context;use' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;context;add' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store: sqlite:PATH, https://HOST:PORT, or http://127.0.0.1:PORT')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the token from this file (`-` for standard input)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Verify the server against these CA certificates (PEM) instead of the system''s roots')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('--no-token', '--no-token', [CompletionResultType]::ParameterName, 'The store needs no token')
            [CompletionResult]::new('--overwrite', '--overwrite', [CompletionResultType]::ParameterName, 'Replace a context of the same name')
            [CompletionResult]::new('--use', '--use', [CompletionResultType]::ParameterName, 'Also make it the current context')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;context;remove' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;context;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the contexts, marking the current one (tokens are never shown)')
            [CompletionResult]::new('use', 'use', [CompletionResultType]::ParameterValue, 'Make NAME the current context')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a context')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a context (the built-in `default` stays)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;context;help;list' {
            break
        }
        'meshctl;context;help;use' {
            break
        }
        'meshctl;context;help;add' {
            break
        }
        'meshctl;context;help;remove' {
            break
        }
        'meshctl;context;help;help' {
            break
        }
        'meshctl;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'The address to listen on, HOST:PORT (port 0: any free port; the line printed at start-up says which)')
            [CompletionResult]::new('--tokens', '--tokens', [CompletionResultType]::ParameterName, 'Accept only the bearer tokens listed in FILE (written by `meshctl token create`)')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS with this PEM certificate chain (needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The PEM private key of --tls-cert')
            [CompletionResult]::new('--etcd-ca', '--etcd-ca', [CompletionResultType]::ParameterName, 'With --store etcd://...: verify the etcd members against this PEM CA bundle (and speak https)')
            [CompletionResult]::new('--etcd-cert', '--etcd-cert', [CompletionResultType]::ParameterName, 'With --store etcd://...: the client certificate to present to etcd (needs --etcd-key)')
            [CompletionResult]::new('--etcd-key', '--etcd-key', [CompletionResultType]::ParameterName, 'The PEM private key of --etcd-cert')
            [CompletionResult]::new('--etcd-prefix', '--etcd-prefix', [CompletionResultType]::ParameterName, 'With --store etcd://...: every key lives under this prefix')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;store' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy every rule from one store to another')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;store;copy' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'The store to copy from, in any form --store takes (a sqlite:PATH must be an existing file), or the name of a context')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The store to copy into, in any form --store takes (a sqlite:PATH is created when missing), or the name of a context')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('--prune', '--prune', [CompletionResultType]::ParameterName, 'Also delete the rules that are in the destination but not in the source')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only say what would be done: nothing is written (and a missing sqlite: destination is not created)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;store;help' {
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy every rule from one store to another')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;store;help;copy' {
            break
        }
        'meshctl;store;help;help' {
            break
        }
        'meshctl;proxy' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Rules from these files or directories instead of the store; re-read when they change')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Rules from these files or directories instead of the store; re-read when they change')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'The proxy port: HTTP forward proxy (absolute-form and CONNECT) and SOCKS5 (port 0: any free port; the start-up lines say which)')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'The admin port: /metrics, /config_dump, /ready')
            [CompletionResult]::new('--forward', '--forward', [CompletionResultType]::ParameterName, 'Accept connections on LOCAL (ADDR:PORT, or PORT on 127.0.0.1) and carry them to HOST:PORT when an EgressRule allows it (repeatable)')
            [CompletionResult]::new('--upstream-ca', '--upstream-ca', [CompletionResultType]::ParameterName, 'Verify upstream TLS (for `https` egress ports) against this PEM bundle instead of the system roots')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Access log format')
            [CompletionResult]::new('--access-log', '--access-log', [CompletionResultType]::ParameterName, 'Write the access log to this file (appended) instead of standard output (`-`)')
            [CompletionResult]::new('--workers', '--workers', [CompletionResultType]::ParameterName, 'Worker threads (default: one per CPU); forwards to an IP address are relayed by as many threads of their own')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'How long to wait for an upstream to accept a connection (then 504, or a close for TCP)')
            [CompletionResult]::new('--drain-timeout', '--drain-timeout', [CompletionResultType]::ParameterName, 'On SIGTERM, how long open connections may take to finish')
            [CompletionResult]::new('--services', '--services', [CompletionResultType]::ParameterName, 'Service registry (YAML: services with a port and endpoints with labels); requests to these services are routed by the RouteRules and DestinationPolicies. Re-read when it changes')
            [CompletionResult]::new('--source-labels', '--source-labels', [CompletionResultType]::ParameterName, 'Labels of the workload the proxy speaks for, matched by `match.source` and `sourceLabels` (KEY=VALUE,...)')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'The service the proxy speaks for, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels, in namespace default)')
            [CompletionResult]::new('--proxy-uid', '--proxy-uid', [CompletionResultType]::ParameterName, 'With --print-iptables: the uid the proxy runs as (its own traffic is not captured)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into -f directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into -f directories recursively')
            [CompletionResult]::new('--transparent', '--transparent', [CompletionResultType]::ParameterName, 'Also take traffic redirected to the proxy port by iptables/nft (its original destination is read with SO_ORIGINAL_DST; HTTP Host and TLS SNI are read for host rules)')
            [CompletionResult]::new('--no-access-log', '--no-access-log', [CompletionResultType]::ParameterName, 'Write no access log at all (the counters on /metrics still count everything)')
            [CompletionResult]::new('--print-iptables', '--print-iptables', [CompletionResultType]::ParameterName, 'Print the iptables commands that capture outbound TCP for --transparent, and exit')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;check' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('--filename', '--filename', [CompletionResultType]::ParameterName, 'Files, directories, or `-` for standard input (repeatable; `-f a.yaml b.yaml` also works)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--services', '--services', [CompletionResultType]::ParameterName, 'Service registry (as for `meshctl proxy --services`): an http:// DEST naming one of its services is checked against the RouteRules and DestinationPolicies instead')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'A request header for RouteRule matches, `NAME: VALUE` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'A request header for RouteRule matches, `NAME: VALUE` (repeatable)')
            [CompletionResult]::new('--method', '--method', [CompletionResultType]::ParameterName, 'The request method for RouteRule matches')
            [CompletionResult]::new('--source-labels', '--source-labels', [CompletionResultType]::ParameterName, 'Labels of the source workload (KEY=VALUE,...), as for `meshctl proxy --source-labels`')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'The source service, NAME or NAME.NAMESPACE (default: the `app` label of --source-labels)')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Descend into directories recursively')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;token' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token and add its hash to a tokens file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;token;create' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'A namespace the token may use; repeat for several (default: every namespace, "*")')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'A namespace the token may use; repeat for several (default: every namespace, "*")')
            [CompletionResult]::new('--tokens-file', '--tokens-file', [CompletionResultType]::ParameterName, 'The tokens file to add the token to')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Allow only reads (get, list, watch); default: reads and writes')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;token;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token and add its hash to a tokens file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;token;help;create' {
            break
        }
        'meshctl;token;help;help' {
            break
        }
        'meshctl;schema' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;completion' {
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;version' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store for this command: sqlite:PATH, https://HOST:PORT, http://127.0.0.1:PORT (loopback only), or etcd://HOST:PORT[,HOST:PORT...]; overrides the current context')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'Use this named context instead of the current one (see `meshctl context`)')
            [CompletionResult]::new('--short', '--short', [CompletionResultType]::ParameterName, 'Print only the version number')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'meshctl;help' {
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check rule files: syntax, schema and Istio''s semantics')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create rules from files (every document is validated first; nothing is written if any is invalid)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Show rules from the store')
            [CompletionResult]::new('replace', 'replace', [CompletionResultType]::ParameterValue, 'Replace existing rules from files (every document is validated first)')
            [CompletionResult]::new('apply', 'apply', [CompletionResultType]::ParameterValue, 'Create or update rules from files (every document is validated first)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete rules: by kind and name, by the files that define them (-f), or all of a kind (--all)')
            [CompletionResult]::new('context', 'context', [CompletionResultType]::ParameterValue, 'Manage named stores and their credentials')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the config store API over HTTP(S)')
            [CompletionResult]::new('store', 'store', [CompletionResultType]::ParameterValue, 'Manage whole stores (copy one into another)')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Run a local sidecar-style proxy that enforces the rules: egress and version routing')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Check whether the EgressRules allow a destination')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Manage API tokens for `meshctl serve`')
            [CompletionResult]::new('schema', 'schema', [CompletionResultType]::ParameterValue, 'Print the JSON schema of rule documents')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Print meshctl''s version')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'meshctl;help;validate' {
            break
        }
        'meshctl;help;create' {
            break
        }
        'meshctl;help;get' {
            break
        }
        'meshctl;help;replace' {
            break
        }
        'meshctl;help;apply' {
            break
        }
        'meshctl;help;delete' {
            break
        }
        'meshctl;help;context' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the contexts, marking the current one (tokens are never shown)')
            [CompletionResult]::new('use', 'use', [CompletionResultType]::ParameterValue, 'Make NAME the current context')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a context')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a context (the built-in `default` stays)')
            break
        }
        'meshctl;help;context;list' {
            break
        }
        'meshctl;help;context;use' {
            break
        }
        'meshctl;help;context;add' {
            break
        }
        'meshctl;help;context;remove' {
            break
        }
        'meshctl;help;serve' {
            break
        }
        'meshctl;help;store' {
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy every rule from one store to another')
            break
        }
        'meshctl;help;store;copy' {
            break
        }
        'meshctl;help;proxy' {
            break
        }
        'meshctl;help;check' {
            break
        }
        'meshctl;help;token' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a token and add its hash to a tokens file')
            break
        }
        'meshctl;help;token;create' {
            break
        }
        'meshctl;help;schema' {
            break
        }
        'meshctl;help;completion' {
            break
        }
        'meshctl;help;version' {
            break
        }
        'meshctl;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
