//! Renders the runtime guide (`docs/runtimes.md`) from data, not by hand:
//!
//! - what the conformance suite observed of each runtime (the file its tests
//!   append to when `AWITH_GUIDE_OUT` is set: `runtime<TAB>topic<TAB>text`);
//! - the cost figures `ci/bench.sh` measured (`docs/runtime-costs.tsv`,
//!   with the date and the machine);
//! - which integration crates of the workspace support which runtime (their
//!   manifests' features).
//!
//! ```text
//! runtime-guide --observations FILE --costs FILE (--out FILE | --check FILE)
//! ```
//!
//! `--check` exits with status 1, and says how to regenerate, when the
//! committed page differs from what the data renders. `ci/guide.sh` runs the
//! observing tests and writes the page.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The runtimes, as the matrix names their tests, and as the page names them.
const RUNTIMES: [(&str, &str); 5] = [
    ("tokio_current_thread", "tokio current-thread"),
    ("tokio_multi_thread", "tokio multi-thread"),
    ("async_std", "async-std"),
    ("smol", "smol"),
    ("reference", "reference (tests)"),
];

/// The rows: topic, and what it asks.
const TOPICS: [(&str, &str); 6] = [
    ("parallel", "Spawned tasks run"),
    ("handle-dropped", "A spawned task's handle is dropped"),
    ("task-panic", "A spawned task panics"),
    (
        "spawn-after-shutdown",
        "Spawning after the runtime shut down",
    ),
    (
        "tasks-at-shutdown",
        "Tasks unfinished when the runtime shuts down",
    ),
    ("timer-resolution", "Timer resolution"),
];

/// The integration crates, and what they integrate.
const INTEGRATIONS: [(&str, &str); 2] = [
    ("awith-redis", "Redis locks"),
    ("awith-sqlx", "sqlx transactions and pools"),
];

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Args {
    observations: PathBuf,
    costs: PathBuf,
    out: Option<PathBuf>,
    check: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut observations, mut costs, mut out, mut check) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .map(PathBuf::from)
            .ok_or_else(|| format!("{flag} needs a file"))?;
        match flag.as_str() {
            "--observations" => observations = Some(value),
            "--costs" => costs = Some(value),
            "--out" => out = Some(value),
            "--check" => check = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if out.is_some() == check.is_some() {
        return Err("say one of --out FILE and --check FILE".into());
    }
    Ok(Args {
        observations: observations.ok_or("--observations FILE is needed")?,
        costs: costs.ok_or("--costs FILE is needed")?,
        out,
        check,
    })
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// (runtime, topic/side) → text. Two different texts for one cell are an
/// error: an observation must not depend on the run.
type Observed = BTreeMap<(String, String), String>;

fn observations(text: &str) -> Result<Observed, String> {
    let mut seen = Observed::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (Some(runtime), Some(topic), Some(what)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("not runtime<TAB>topic<TAB>text: {line:?}"));
        };
        let key = (runtime.to_string(), topic.to_string());
        match seen.get(&key) {
            Some(before) if before != what => {
                return Err(format!(
                    "{runtime} {topic}: observed both {before:?} and {what:?}"
                ));
            }
            _ => {
                seen.insert(key, what.to_string());
            }
        }
    }
    Ok(seen)
}

fn cell(observed: &Observed, runtime: &str, topic: &str, side: &str) -> String {
    observed
        .get(&(runtime.to_string(), format!("{topic}/{side}")))
        .cloned()
        .unwrap_or_else(|| "—".into())
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn behaviour(out: &mut String, observed: &Observed) {
    let mut header = vec![String::new()];
    header.extend(RUNTIMES.iter().map(|(_, label)| (*label).to_string()));
    row(out, &header);
    row(out, &vec!["---".to_string(); header.len()]);
    for (topic, question) in TOPICS {
        let mut native = vec![format!("**{question}**: the runtime")];
        native.extend(
            RUNTIMES
                .iter()
                .map(|(runtime, _)| cell(observed, runtime, topic, "native")),
        );
        row(out, &native);
        let awith: Vec<String> = RUNTIMES
            .iter()
            .map(|(runtime, _)| cell(observed, runtime, topic, "awith"))
            .collect();
        if awith.iter().any(|text| text != "—") {
            let mut with = vec!["… through awith".to_string()];
            with.extend(awith);
            row(out, &with);
        }
    }
}

/// The cost table, from `docs/runtime-costs.tsv`: its `#` lines say how it
/// was measured (the `date:` and `machine:` ones are shown); the first other
/// line names the columns, which must include those read here.
fn costs(out: &mut String, text: &str) -> Result<(), String> {
    let mut notes = Vec::new();
    let mut table = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        match line.strip_prefix('#') {
            Some(note) => notes.push(note.trim().to_string()),
            None => table.push(line.split('\t').map(str::to_string).collect::<Vec<_>>()),
        }
    }
    let Some((columns, rows)) = table.split_first() else {
        return Err("the cost file has no table".into());
    };
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| format!("the cost file has no column {name}"))
    };
    let [
        label,
        spawn,
        spawn_ratio,
        scope,
        scope_ratio,
        hand,
        hand_ratio,
        scope_instr,
        hand_instr,
    ] = [
        "label",
        "spawn_join_ns",
        "spawn_join_ratio",
        "scope_ns",
        "scope_ratio",
        "hand_scope_ns",
        "hand_scope_ratio",
        "scope_instr",
        "hand_scope_instr",
    ]
    .map(column);
    let (label, spawn, spawn_ratio, scope, scope_ratio, hand, hand_ratio, scope_instr, hand_instr) = (
        label?,
        spawn?,
        spawn_ratio?,
        scope?,
        scope_ratio?,
        hand?,
        hand_ratio?,
        scope_instr?,
        hand_instr?,
    );
    for note in notes
        .iter()
        .filter(|note| note.starts_with("date:") || note.starts_with("machine:"))
    {
        let _ = writeln!(out, "> {note}  ");
    }
    out.push_str("> renew: `ci/bench.sh runtime-spawn runtime-scope`, then `ci/guide.sh`\n");
    out.push('\n');
    row(
        out,
        &[
            "runtime",
            "spawn + join",
            "vs tokio current-thread",
            "a scope",
            "the same by hand",
            "scope ÷ by hand (time)",
            "scope − by hand (instructions)",
        ]
        .map(str::to_string),
    );
    row(out, &vec!["---".to_string(); 7]);
    for cells in rows {
        if cells.len() != columns.len() {
            return Err(format!(
                "the cost file's row {cells:?} does not have {} cells",
                columns.len()
            ));
        }
        let number = |at: usize| -> Result<f64, String> {
            cells[at]
                .parse()
                .map_err(|_| format!("not a number in the cost file: {:?}", cells[at]))
        };
        let extra = match (number(scope_instr), number(hand_instr)) {
            (Ok(scope), Ok(hand)) => format!("{:.0}", scope - hand),
            _ => "—".into(),
        };
        row(
            out,
            &[
                cells[label].clone(),
                format!("{:.0} ns", number(spawn)?),
                format!("{:.2}×", number(spawn_ratio)?),
                format!("{:.0} ns", number(scope)?),
                format!("{:.0} ns", number(hand)?),
                format!("{:.2}×", number(scope_ratio)? / number(hand_ratio)?),
                extra,
            ],
        );
    }
    Ok(())
}

/// Which runtimes an integration crate supports: its manifest's runtime
/// features, or that it does not exist yet.
fn integrations(out: &mut String) {
    let mut header = vec!["integration".to_string()];
    header.extend(RUNTIMES[..4].iter().map(|(_, label)| (*label).to_string()));
    row(out, &header);
    row(out, &vec!["---".to_string(); header.len()]);
    for (krate, what) in INTEGRATIONS {
        let manifest = Path::new(ROOT)
            .join("../../crates")
            .join(krate)
            .join("Cargo.toml");
        let mut cells = vec![format!("`{krate}` ({what})")];
        match std::fs::read_to_string(&manifest) {
            Err(_) => cells.extend(std::iter::repeat_n("not yet".to_string(), 4)),
            Ok(text) => {
                let features = manifest_features(&text);
                for (runtime, _) in &RUNTIMES[..4] {
                    let feature = if runtime.starts_with("tokio") {
                        "tokio"
                    } else if *runtime == "async_std" {
                        "async-std"
                    } else {
                        runtime
                    };
                    cells.push(
                        if features.iter().any(|f| f == feature) {
                            "yes"
                        } else {
                            "no"
                        }
                        .to_string(),
                    );
                }
            }
        }
        row(out, &cells);
    }
}

/// The names in a manifest's `[features]` table.
fn manifest_features(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[features]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            line.split_once('=')
                .map(|(name, _)| name.trim().to_string())
        })
        .filter(|name| !name.starts_with('#'))
        .collect()
}

fn render(observed: &Observed, cost_text: &str) -> Result<String, String> {
    let mut out = String::new();
    out.push_str(
        "<!-- Generated by `ci/guide.sh` (tests/conformance/src/bin/runtime-guide.rs) from the \
         conformance suite's observations and ci/bench.sh's figures: do not edit by hand. \
         ci/test.sh fails when this page is not what the data renders. -->\n\n",
    );
    out.push_str(
        "# Choosing a runtime\n\n\
         awith runs the same scopes, pools, locks and task groups on tokio (both flavours), \
         async-std and smol, and its conformance suite runs every test on each (and on the \
         deterministic reference runtime, for tests). Where the runtimes differ, the table \
         says what the suite observed of the runtime itself, and what it observed through \
         awith, which makes them behave alike.\n\n\
         ## Behaviour, as the conformance suite observed it\n\n",
    );
    behaviour(&mut out, observed);
    out.push_str(
        "\nThe rows come from `guide_runtime_differences`, `spawn_parallelism`, \
         `spawn_after_shutdown` and `cleanup_dropped_at_shutdown` in \
         `tests/conformance`. awith never relies on what differs: its own tasks are \
         detached and catch their panics, a refused spawn is a `SpawnError` (never a \
         silent loss), and every cleanup a runtime drops is reported as an `Incident`.\n\n\
         ## Cost\n\n\
         Measured side by side in one run by `ci/bench.sh` (`docs/runtime-costs.tsv`): \
         medians of interleaved rounds on a shared machine, so compare the runtimes within \
         the table, not with another machine. A scope's acquire and release each yield \
         once; \"by hand\" is the same three steps without awith, on the same runtime; \
         instructions are counted by callgrind.\n\n",
    );
    costs(&mut out, cost_text)?;
    out.push_str("\n## Integrations\n\n");
    integrations(&mut out);
    out.push_str(
        "\n## async-std is discontinued\n\n\
         async-std's maintainers discontinued it in 2025 and point users to smol \
         ([RUSTSEC-2025-0052](https://rustsec.org/advisories/RUSTSEC-2025-0052.html)). \
         awith keeps supporting it (feature `async-std`) for code that already runs on it, \
         and runs the whole suite on it. For new code choose smol, which shares \
         async-std's reactor and timers (async-io).\n",
    );
    Ok(out)
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        let observed = observations(&read(&args.observations)?)?;
        let page = render(&observed, &read(&args.costs)?)?;
        if let Some(out) = &args.out {
            std::fs::write(out, &page).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("runtime-guide: wrote {}", out.display());
            return Ok(true);
        }
        let check = args.check.as_deref().expect("--out or --check");
        let committed = read(check)?;
        if committed == page {
            println!("runtime-guide: {} is current", check.display());
            return Ok(true);
        }
        let mut shown = 0;
        for (line, (old, new)) in committed.lines().zip(page.lines()).enumerate() {
            if old != new && shown < 10 {
                println!("line {}:\n  committed: {old}\n  rendered:  {new}", line + 1);
                shown += 1;
            }
        }
        if committed.lines().count() != page.lines().count() {
            println!(
                "committed: {} lines, rendered: {} lines",
                committed.lines().count(),
                page.lines().count()
            );
        }
        println!(
            "runtime-guide: {} is not what the data renders: run ci/guide.sh and commit it",
            check.display()
        );
        Ok(false)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("runtime-guide: {error}");
            ExitCode::from(2)
        }
    }
}
