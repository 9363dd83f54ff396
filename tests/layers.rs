//! The workspace's layering rules (`docs/architecture.md`), checked on the sources and the
//! dependency graph. Each check is also run on an input that must fail it, so that it can
//! fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace's top directory.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names of the crates in `cargo tree -p PACKAGE -e normal` (normal dependencies only).
fn dependency_names(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} tree: {e}"));
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The command-line and logging-setup crates among `names`.
fn cli_crates(names: &[String]) -> Vec<&str> {
    names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("clap") || *n == "tracing-subscriber")
        .collect()
}

#[test]
fn the_library_depends_on_no_command_line_crate() {
    let library = dependency_names("brlock");
    assert!(library.iter().any(|n| n == "mpi"), "{library:?}");
    assert_eq!(cli_crates(&library), Vec::<&str>::new(), "{library:?}");
    // The binary does depend on them: the check sees them where they are.
    let binary = dependency_names("brlock-cli");
    assert!(cli_crates(&binary).contains(&"clap"), "{binary:?}");
    assert!(
        cli_crates(&binary).contains(&"tracing-subscriber"),
        "{binary:?}"
    );
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// Where the sources below `dirs` allow `unsafe` code despite the workspace's
/// `unsafe_code = "deny"`: `(file, line)` of each `allow(unsafe_code)`.
fn unsafe_allowances(root: &Path, dirs: &[&str]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for dir in dirs {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            let rel = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("").trim();
                let attribute = code.starts_with("#[") || code.starts_with("#![");
                if attribute && code.contains("allow(") && code.contains("unsafe_code") {
                    found.push((rel.clone(), code.to_string()));
                }
            }
        }
    }
    found
}

/// `unsafe` is denied in every package but the C API (`[lints] workspace = true` and the
/// workspace's `unsafe_code = "deny"`), and allowed in exactly one module: `sys`. The
/// compiler enforces the rest.
#[test]
fn unsafe_code_is_only_in_sys_and_the_c_api() {
    let root = root();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    assert!(workspace.contains("unsafe_code = \"deny\""), "{workspace}");
    for package in [".", "cli", "testkit"] {
        let manifest = std::fs::read_to_string(root.join(package).join("Cargo.toml"))
            .expect("a package manifest");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{package}/Cargo.toml does not take the workspace's lints"
        );
    }
    let allowed = unsafe_allowances(
        &root,
        &["src", "cli", "testkit", "tests", "examples", "benches"],
    );
    // The check finds the one there is.
    assert_eq!(
        allowed,
        vec![(
            "src/lib.rs".to_string(),
            "#[allow(unsafe_code)]".to_string()
        )],
        "unsafe allowed outside `sys`"
    );
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    assert!(lib.contains("#[allow(unsafe_code)]\npub mod sys;"), "{lib}");
}

/// The modules a command file uses from the binary: `crate::X` and `super::X` paths.
fn binary_modules_used(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            used.push(format!("{prefix}{name}"));
        }
    }
    used
}

#[test]
fn no_command_file_uses_another() {
    let dir = root().join("cli/src/commands");
    let mut offenders = Vec::new();
    for file in rust_files(&dir) {
        if file.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for module in binary_modules_used(&text) {
            if !matches!(module.as_str(), "crate::args" | "crate::output") {
                offenders.push(format!("{}: {module}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
    // The scanner sees a use of another command file where there is one.
    assert_eq!(
        binary_modules_used("use super::check_lock::LockCheckArgs;"),
        vec!["super::check_lock"]
    );
}
