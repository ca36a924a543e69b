//! The `meshctl` binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

/// mimalloc (see `memory::Allocator`) instead of the system allocator: validation allocates and frees many small strings (one
/// per YAML scalar), from several threads at once, where glibc's malloc is markedly slower.
#[global_allocator]
static GLOBAL: meshctl::memory::Allocator = meshctl::memory::Allocator;

fn main() -> ExitCode {
    meshctl::memory::disable_transparent_huge_pages();
    meshctl::cli::main()
}
