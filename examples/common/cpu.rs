//! This process's CPU time, for the examples that report CPU per request (`h1_client_cost`,
//! `h1_server_cost`).

use anyhow::Context;

/// User and system CPU time of this process so far, in seconds (from /proc/self/stat).
pub fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short /proc/self/stat")?.parse()?) };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the command name.
    Ok((field(11)? + field(12)?) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}
