
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
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand validate 'Check rule files: syntax, schema and Istio''s semantics'
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
        &'meshctl;schema'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;completion'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;version'= {
            cand -o 'Output format'
            cand --output 'Output format'
            cand --short 'Print only the version number'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'meshctl;help'= {
            cand validate 'Check rule files: syntax, schema and Istio''s semantics'
            cand schema 'Print the JSON schema of rule documents'
            cand completion 'Print a shell completion script'
            cand version 'Print meshctl''s version'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'meshctl;help;validate'= {
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
