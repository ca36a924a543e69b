//! Generated artefacts that are checked in: shell completions (`completions/`), man pages
//! (`docs/man/`) and the command reference (`docs/reference.md`).
//!
//! Each test renders its artefacts from the clap definitions and compares them with the files in the
//! repository, so a change to the command line that forgets to regenerate them fails here. With
//! `MESHCTL_UPDATE_GENERATED=1` (what `make generate` sets) the tests write the files instead, and
//! remove files that are no longer generated (a man page for a command that is gone).
//!
//! Everything rendered here is deterministic: no dates, commands in a fixed (sorted) order, so a
//! regeneration with no change to the CLI gives no diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Command};
use clap_complete::Shell;

/// The environment variable that turns the checks into updates.
const UPDATE_VAR: &str = "MESHCTL_UPDATE_GENERATED";

// === completions ===

/// Shells and the file each one's script is kept in (the names the shells look for).
const SHELLS: [(Shell, &str); 5] = [
    (Shell::Bash, "meshctl.bash"),
    (Shell::Elvish, "meshctl.elv"),
    (Shell::Fish, "meshctl.fish"),
    (Shell::PowerShell, "_meshctl.ps1"),
    (Shell::Zsh, "_meshctl"),
];

#[test]
fn completions_are_fresh() {
    let mut files = BTreeMap::new();
    for (shell, name) in SHELLS {
        let mut out = Vec::new();
        meshctl::cli::completion::write(shell, &mut out);
        files.insert(PathBuf::from(name), into_text(out));
    }
    check_dir("completions", &files);
}

// === man pages ===

#[test]
fn man_pages_are_fresh() {
    let mut files = BTreeMap::new();
    for cmd in commands() {
        // The default source line would name the subcommand alone ("validate 0.1.0").
        let man = clap_mangen::Man::new(cmd).source(format!("meshctl {}", env!("CARGO_PKG_VERSION")));
        let mut out = Vec::new();
        man.render(&mut out).expect("rendering to memory cannot fail");
        files.insert(PathBuf::from(man.get_filename()), into_text(out));
    }
    check_dir("docs/man", &files);
}

// === command reference ===

#[test]
fn reference_is_fresh() {
    let files = BTreeMap::from([(PathBuf::from("reference.md"), reference())]);
    check_files("docs", &files);
}

/// The generator must not silently drop anything: every command, and every visible argument's
/// long name or value name, appears in the reference.
#[test]
fn reference_covers_every_command_and_argument() {
    let text = reference();
    for cmd in commands() {
        let name = bin_name(&cmd);
        assert!(text.contains(&format!("## `{name}`")), "no section for `{name}`");
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let shown = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => value_names(arg).join(" "),
            };
            assert!(
                text.contains(&shown),
                "`{name}`: argument `{shown}` missing from the reference"
            );
        }
    }
}

/// The command reference in Markdown: a contents list, then one section per command with its usage
/// line, description, arguments and options (help, default, possible values) and subcommands.
fn reference() -> String {
    let commands = commands();
    let mut md = String::new();
    md.push_str("# meshctl command reference\n\n");
    md.push_str(
        "<!-- Generated from the command-line definitions by tests/generated.rs. Do not edit: \
         run `make generate` after changing the CLI. -->\n\n",
    );
    md.push_str(
        "Every command, with the options it takes. The same text is in `meshctl <command> --help` and \
         in the man pages under [`man/`](man/).\n\n",
    );
    for cmd in &commands {
        let name = bin_name(cmd);
        let depth = name.split(' ').count() - 1;
        let about = cmd.get_about().map(|s| s.to_string()).unwrap_or_default();
        let _ = writeln!(
            md,
            "{}- [`{name}`](#{}): {}",
            "  ".repeat(depth),
            anchor(&name),
            escape(&about)
        );
    }
    for cmd in commands {
        render_command(&mut md, cmd);
    }
    tidy(&md)
}

fn render_command(md: &mut String, mut cmd: Command) {
    let name = bin_name(&cmd);
    let _ = writeln!(md, "\n## `{name}`\n");
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(md, "{}\n", escape(about.to_string().trim()));
    }
    let usage = cmd.render_usage().to_string();
    let _ = writeln!(md, "```text\n{}\n```", usage.trim());

    let visible = |positional: bool| {
        cmd.get_arguments()
            .filter(move |a| !a.is_hide_set() && a.is_positional() == positional)
            .collect::<Vec<_>>()
    };
    for (title, args) in [("Arguments", visible(true)), ("Options", visible(false))] {
        if args.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n### {title}\n");
        for arg in args {
            render_arg(md, arg);
        }
    }

    let subcommands = sorted_subcommands(&cmd);
    if !subcommands.is_empty() {
        md.push_str("\n### Subcommands\n\n");
        for sub in subcommands {
            let sub_name = bin_name(sub);
            let about = sub.get_about().map(|s| s.to_string()).unwrap_or_default();
            let _ = writeln!(
                md,
                "- [`{}`](#{}): {}",
                sub.get_name(),
                anchor(&sub_name),
                escape(&about)
            );
        }
    }

    if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        let _ = writeln!(md, "\n```text\n{}\n```", after.to_string().trim_end());
    }
}

/// One list item: the flags in code, what they take, then help, possible values and default.
fn render_arg(md: &mut String, arg: &clap::Arg) {
    let takes_value = arg.get_action().takes_values();
    let mut flags = Vec::new();
    if arg.is_positional() {
        flags.push(format!("`{}`", value_names(arg).join(" ")));
    } else {
        let values = if takes_value {
            format!(" {}", value_names(arg).join(" "))
        } else {
            String::new()
        };
        let mut shorts = arg.get_short().into_iter().collect::<Vec<_>>();
        shorts.extend(arg.get_visible_short_aliases().unwrap_or_default());
        let mut longs = arg.get_long().into_iter().collect::<Vec<_>>();
        longs.extend(arg.get_visible_aliases().unwrap_or_default());
        flags.extend(shorts.iter().map(|s| format!("`-{s}`")));
        // The value goes on the last spelling, as in `-f`, `--filename <PATH>`.
        flags.extend(longs.iter().map(|l| format!("`--{l}`")));
        if let Some(last) = flags.last_mut() {
            *last = format!("{}{values}`", last.trim_end_matches('`'));
        }
    }

    let mut notes = Vec::new();
    if arg.is_required_set() {
        notes.push("required".to_owned());
    }
    if takes_value && matches!(arg.get_action(), ArgAction::Append) {
        notes.push("repeatable".to_owned());
    }
    if let Some(delimiter) = arg.get_value_delimiter() {
        notes.push(format!("values separated by `{delimiter}`"));
    }
    if let Some(env) = arg.get_env() {
        notes.push(format!("env `{}`", env.to_string_lossy()));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    let _ = writeln!(md, "- {}{notes}", flags.join(", "));

    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    if !help.trim().is_empty() {
        let _ = writeln!(md, "\n{}", indent(&escape(help.trim()), "  "));
    }

    let possible = arg
        .get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .collect::<Vec<_>>();
    if takes_value && !possible.is_empty() {
        md.push_str("\n  Possible values:\n\n");
        for value in possible {
            let mut line = format!("  - `{}`", value.get_name());
            let aliases = value.get_name_and_aliases().skip(1).collect::<Vec<_>>();
            if !aliases.is_empty() {
                let _ = write!(
                    line,
                    " (also {})",
                    aliases.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                );
            }
            if let Some(help) = value.get_help() {
                let _ = write!(line, ": {}", escape(&help.to_string()));
            }
            let _ = writeln!(md, "{line}");
        }
    }

    let defaults = arg.get_default_values();
    if takes_value && !defaults.is_empty() {
        let defaults = defaults
            .iter()
            .map(|d| format!("`{}`", d.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(md, "\n  Default: {defaults}");
    }
    md.push('\n');
}

/// `<PATH>`, or the argument's id in capitals when it names no value.
fn value_names(arg: &clap::Arg) -> Vec<String> {
    let names = match arg.get_value_names() {
        Some(names) => names.iter().map(|n| format!("<{n}>")).collect(),
        None => vec![format!("<{}>", arg.get_id().as_str().to_uppercase())],
    };
    let many = arg.get_num_args().is_some_and(|n| n.max_values() > names.len());
    if many && arg.is_positional() {
        names.into_iter().map(|n| format!("{n}...")).collect()
    } else {
        names
    }
}

/// GitHub's anchor for a heading that is just `name` in code: lower case, spaces become dashes.
fn anchor(name: &str) -> String {
    name.to_lowercase().replace(' ', "-")
}

/// Keeps `<...>` in prose from being read as HTML; code spans are left alone.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => in_code = !in_code,
            '<' | '>' if !in_code => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out
}

/// At most one blank line in a row outside code blocks, and one newline at the end: the sections
/// above each leave a blank line behind them without knowing what follows.
fn tidy(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut blank = false;
    let mut in_fence = false;
    for line in md.trim_end().lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if line.is_empty() && blank && !in_fence {
            continue;
        }
        blank = line.is_empty();
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// === the command tree ===

/// `meshctl` and every visible subcommand, depth first, siblings sorted by name. Built, so each
/// carries its full name (`meshctl validate`) and the propagated `--version`. The `help` subcommand
/// is left out: it only repeats `--help`.
fn commands() -> Vec<Command> {
    fn walk(cmd: &Command, out: &mut Vec<Command>) {
        out.push(cmd.clone());
        for sub in sorted_subcommands(cmd) {
            walk(sub, out);
        }
    }
    let mut root = meshctl::cli::command().disable_help_subcommand(true);
    root.build();
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

fn sorted_subcommands(cmd: &Command) -> Vec<&Command> {
    let mut subs = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect::<Vec<_>>();
    subs.sort_by_key(|s| s.get_name());
    subs
}

fn bin_name(cmd: &Command) -> String {
    cmd.get_bin_name().unwrap_or(cmd.get_name()).to_owned()
}

// === checking and updating ===

fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("generated text is UTF-8")
}

fn updating() -> bool {
    std::env::var_os(UPDATE_VAR).is_some_and(|v| v == "1")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Checks (or writes) `files` in `dir`, a directory that holds only generated files: anything else
/// in it is stale too.
fn check_dir(dir: &str, files: &BTreeMap<PathBuf, String>) {
    let abs = root().join(dir);
    let mut orphans = Vec::new();
    if let Ok(entries) = fs::read_dir(&abs) {
        for entry in entries {
            let name = PathBuf::from(entry.expect("readable directory").file_name());
            if !files.contains_key(&name) {
                orphans.push(name);
            }
        }
    }
    orphans.sort();
    if updating() {
        for name in &orphans {
            fs::remove_file(abs.join(name)).unwrap_or_else(|e| panic!("removing {dir}/{}: {e}", name.display()));
        }
        check_files(dir, files);
        return;
    }
    let mut problems = orphans
        .iter()
        .map(|name| format!("{dir}/{}: no longer generated", name.display()))
        .collect::<Vec<_>>();
    problems.extend(stale(dir, files));
    report(&problems);
}

/// Checks (or writes) `files` in `dir`, a directory that may hold other files too.
fn check_files(dir: &str, files: &BTreeMap<PathBuf, String>) {
    if updating() {
        let abs = root().join(dir);
        fs::create_dir_all(&abs).unwrap_or_else(|e| panic!("creating {dir}: {e}"));
        for (name, text) in files {
            let path = abs.join(name);
            if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
                eprintln!("updated {dir}/{}", name.display());
            }
        }
        return;
    }
    report(&stale(dir, files));
}

/// A line for each file that is missing or differs, naming the first differing line.
fn stale(dir: &str, files: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, expected) in files {
        let shown = format!("{dir}/{}", name.display());
        match fs::read_to_string(root().join(dir).join(name)) {
            Err(e) => problems.push(format!("{shown}: cannot be read ({e})")),
            Ok(actual) if actual == *expected => {}
            Ok(actual) => {
                let mut expected_lines = expected.lines();
                let mut actual_lines = actual.lines();
                let mut line = 1;
                loop {
                    match (expected_lines.next(), actual_lines.next()) {
                        (Some(e), Some(a)) if e == a => line += 1,
                        (e, a) => {
                            problems.push(format!(
                                "{shown}:{line}: differs\n    generated: {}\n    in file:   {}",
                                e.unwrap_or("(end of file)"),
                                a.unwrap_or("(end of file)"),
                            ));
                            break;
                        }
                    }
                }
            }
        }
    }
    problems
}

fn report(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "generated files are stale; run `make generate` (or `{UPDATE_VAR}=1 cargo test --test generated`) \
         and commit the result:\n  {}",
        problems.join("\n  ")
    );
}
