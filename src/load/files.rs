//! Finding the files that `-f` names: files, directories (recursively with `-R`), and `-` for stdin.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// The name diagnostics show.
    pub fn display(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }

    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Input::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin().lock().read_to_end(&mut buf)?;
                Ok(buf)
            }
            Input::File(p) => fs::read(p),
        }
    }
}

/// A path that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`-` (standard input) is given more than once")]
    StdinTwice,
}

/// The extensions of rule files inside directories. Files named directly are read whatever their name.
pub const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Expands `-f` arguments into inputs: files as given, directories into their rule files (sorted;
/// recursing when `recursive`, skipping hidden entries), `-` into stdin. Duplicates are dropped.
pub fn collect(args: &[PathBuf], recursive: bool) -> Result<Vec<Input>, InputError> {
    let mut out = Vec::new();
    let mut stdin = false;
    for arg in args {
        if arg.as_os_str() == "-" {
            if stdin {
                return Err(InputError::StdinTwice);
            }
            stdin = true;
            out.push(Input::Stdin);
            continue;
        }
        let meta = fs::metadata(arg).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => InputError::NotFound {
                path: arg.display().to_string(),
            },
            _ => InputError::Io {
                path: arg.display().to_string(),
                source: e,
            },
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(arg, recursive, &mut found)?;
            found.sort();
            out.extend(found.into_iter().map(Input::File));
        } else {
            out.push(Input::File(arg.clone()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|i| seen.insert(i.clone()));
    Ok(out)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io = |e| InputError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else { continue };
        // Symlinked files are read; symlinked directories are not entered, so a link cycle cannot loop.
        let Ok(meta) = fs::metadata(&path) else { continue };
        if meta.is_dir() {
            if recursive && !file_type.is_symlink() {
                walk(&path, recursive, out)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}
