//! The report of `ci/bench.sh`: `report.md` (tables) and `ratios.svg` (a
//! chart of the time ratios), rendered from the `results.tsv` the script
//! writes as it goes (by the `bench-report` binary).
//!
//! # `results.tsv`
//!
//! Tab-separated; a line's first field says what it holds; `#` starts a
//! comment; `-` is a figure not measured.
//!
//! ```text
//! meta     KEY VALUE                       date, machine, rustc, commit, seconds, version:CRATE
//! group    GROUP BENCH KIND BASELINE MEASURED CALLGRIND_N TIME_S CALLGRIND_S ABOUT
//! time     GROUP VARIANT NS RATIO RATIO_P10 RATIO_P90 INSTR
//! versus   GROUP VARIANT VERSUS RATIO RATIO_P10 RATIO_P90
//! latency  GROUP VARIANT P50_US P90_US P99_US MAX_US
//! goal     GROUP VARIANT VERSUS MEASURE OPERATOR VALUE SOURCE
//! ```
//!
//! - `group`: `KIND` is `time` or `latency`; `MEASURED` says how much was
//!   measured (`401 rounds x 12 iterations`); `CALLGRIND_N` the iterations
//!   of a callgrind run (`0`: none); `TIME_S` and `CALLGRIND_S` how long the
//!   two passes took, in seconds.
//! - `time`: a variant's median ns per iteration, the median of its
//!   per-round ratios to the baseline and their 10th and 90th percentiles,
//!   and its instructions per iteration under callgrind.
//! - `versus`: a ratio the group asks for besides those to the baseline
//!   ([`Group::versus`](crate::Group::versus)).
//! - `latency`: a latency group's percentiles, in microseconds.
//! - `goal`: as `--list-goals` writes them (see the crate docs).

use std::fmt::{self, Write as _};

use crate::{Bound, Measure};

/// Everything `results.tsv` holds, in its order.
#[derive(Debug, Default)]
pub struct Results {
    /// `meta` lines: key, value.
    meta: Vec<(String, String)>,
    /// The groups, in the order they ran.
    groups: Vec<GroupResult>,
}

#[derive(Debug)]
struct GroupResult {
    name: String,
    bench: String,
    latency: bool,
    baseline: String,
    measured: String,
    callgrind_n: u64,
    time_s: Option<f64>,
    callgrind_s: Option<f64>,
    about: String,
    times: Vec<TimeRow>,
    versus: Vec<VersusRow>,
    latencies: Vec<LatencyRow>,
    goals: Vec<GoalRow>,
}

#[derive(Debug)]
struct TimeRow {
    variant: String,
    ns: Option<f64>,
    ratio: Spread,
    instructions: Option<f64>,
}

#[derive(Debug)]
struct VersusRow {
    variant: String,
    versus: String,
    ratio: Spread,
}

#[derive(Debug)]
struct LatencyRow {
    variant: String,
    /// p50, p90, p99, max, in microseconds.
    us: [Option<f64>; 4],
}

#[derive(Debug)]
struct GoalRow {
    variant: String,
    versus: String,
    target: Target,
    source: String,
}

/// What a goal bounds.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// A ratio `variant / versus`.
    Ratio(Measure, Bound),
    /// A latency percentile (50, 99, …), at most so many microseconds.
    Percentile(u8, f64),
}

/// A median ratio and its 10th and 90th percentiles over rounds.
#[derive(Clone, Copy, Debug)]
struct Spread {
    median: Option<f64>,
    p10: Option<f64>,
    p90: Option<f64>,
}

impl Spread {
    /// The ratio the other way round: `b / a` from `a / b`.
    fn inverse(self) -> Spread {
        let inv = |x: Option<f64>| x.map(|x| 1.0 / x);
        Spread {
            median: inv(self.median),
            p10: inv(self.p90),
            p90: inv(self.p10),
        }
    }
}

/// A goal's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Met => "yes",
            Verdict::Missed => "**no**",
            Verdict::NotMeasured => "not measured",
        })
    }
}

/// A figure, or `-` when it was not measured.
fn figure(field: &str, what: &str, line: usize) -> Result<Option<f64>, String> {
    if field == "-" || field.is_empty() {
        return Ok(None);
    }
    field
        .parse()
        .map(Some)
        .map_err(|_| format!("line {line}: {what} must be a number or `-`, not `{field}`"))
}

impl Results {
    /// Parses `results.tsv` (see the module docs).
    ///
    /// # Errors
    ///
    /// A line of an unknown kind or with too few fields, a figure that is
    /// not a number, or a row for a group no `group` line announced before.
    pub fn parse(tsv: &str) -> Result<Results, String> {
        let mut results = Results::default();
        for (index, line) in tsv.lines().enumerate() {
            let number = index + 1;
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let want = match fields[0] {
                "meta" => 3,
                "group" => 10,
                "time" => 8,
                "versus" | "latency" => 7,
                "goal" => 8,
                kind => return Err(format!("line {number}: unknown kind of line `{kind}`")),
            };
            if fields.len() < want {
                return Err(format!(
                    "line {number}: a `{}` line has {want} fields, this one {}",
                    fields[0],
                    fields.len()
                ));
            }
            let num = |at: usize, what: &str| figure(fields[at], what, number);
            let spread = |at: usize| -> Result<Spread, String> {
                Ok(Spread {
                    median: num(at, "a ratio")?,
                    p10: num(at + 1, "a ratio's p10")?,
                    p90: num(at + 2, "a ratio's p90")?,
                })
            };
            if fields[0] == "meta" {
                results
                    .meta
                    .push((fields[1].to_owned(), fields[2..].join("\t")));
                continue;
            }
            if fields[0] == "group" {
                results.groups.push(GroupResult {
                    name: fields[1].to_owned(),
                    bench: fields[2].to_owned(),
                    latency: match fields[3] {
                        "time" => false,
                        "latency" => true,
                        kind => {
                            return Err(format!(
                                "line {number}: a group's kind is `time` or `latency`, not `{kind}`"
                            ));
                        }
                    },
                    baseline: fields[4].to_owned(),
                    measured: fields[5].to_owned(),
                    callgrind_n: num(6, "CALLGRIND_N")?.unwrap_or(0.0) as u64,
                    time_s: num(7, "TIME_S")?,
                    callgrind_s: num(8, "CALLGRIND_S")?,
                    about: fields[9..].join("\t"),
                    times: Vec::new(),
                    versus: Vec::new(),
                    latencies: Vec::new(),
                    goals: Vec::new(),
                });
                continue;
            }
            let group = results
                .groups
                .iter_mut()
                .rfind(|group| group.name == fields[1])
                .ok_or_else(|| {
                    format!(
                        "line {number}: group `{}` has no `group` line before it",
                        fields[1]
                    )
                })?;
            let variant = fields[2].to_owned();
            match fields[0] {
                "time" => group.times.push(TimeRow {
                    variant,
                    ns: num(3, "NS")?,
                    ratio: spread(4)?,
                    instructions: num(7, "INSTR")?,
                }),
                "versus" => group.versus.push(VersusRow {
                    variant,
                    versus: fields[3].to_owned(),
                    ratio: spread(4)?,
                }),
                "latency" => group.latencies.push(LatencyRow {
                    variant,
                    us: [
                        num(3, "P50_US")?,
                        num(4, "P90_US")?,
                        num(5, "P99_US")?,
                        num(6, "MAX_US")?,
                    ],
                }),
                _ => {
                    let value = num(6, "VALUE")?
                        .ok_or_else(|| format!("line {number}: a goal's VALUE must be a number"))?;
                    let target = match Measure::from_name(fields[4]) {
                        Some(measure) => {
                            let bound =
                                Bound::from_operator(fields[5], value).ok_or_else(|| {
                                    format!(
                                        "line {number}: a goal's OPERATOR is `<=` or `>=`, not `{}`",
                                        fields[5]
                                    )
                                })?;
                            Target::Ratio(measure, bound)
                        }
                        None => {
                            let percentile = fields[4]
                                .strip_prefix('p')
                                .and_then(|p| p.parse().ok())
                                .ok_or_else(|| {
                                    format!(
                                        "line {number}: a goal's MEASURE is time, throughput, \
                                         instructions or pNN, not `{}`",
                                        fields[4]
                                    )
                                })?;
                            Target::Percentile(percentile, value)
                        }
                    };
                    group.goals.push(GoalRow {
                        variant,
                        versus: fields[3].to_owned(),
                        target,
                        source: fields[7].to_owned(),
                    });
                }
            }
        }
        Ok(results)
    }

    fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }

    /// The report, in Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let meta = |key: &str| self.meta(key).unwrap_or("unknown").to_owned();
        let _ = writeln!(md, "# awith benchmark report\n");
        let _ = writeln!(
            md,
            "Written by `ci/bench.sh` (the time comparison, then callgrind) and rendered \
             by `bench-report` from `results.tsv`; the chart is `ratios.svg`.\n"
        );
        let versions: Vec<String> = self
            .meta
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix("version:")?;
                (name != "awith").then(|| format!("{name} {value}"))
            })
            .collect();
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| date | {} |", meta("date"));
        let _ = writeln!(md, "| machine | {} |", meta("machine"));
        let _ = writeln!(md, "| rustc | {} |", meta("rustc"));
        let _ = writeln!(md, "| commit | {} |", meta("commit"));
        let _ = writeln!(md, "| awith | {} |", meta("version:awith"));
        let _ = writeln!(
            md,
            "| peers (Cargo.lock) | {} |",
            if versions.is_empty() {
                "unknown".to_owned()
            } else {
                versions.join(", ")
            }
        );
        if let Some(seconds) = self.meta("seconds") {
            let _ = writeln!(
                md,
                "| `ci/bench.sh` took | {seconds} s (once built: the time comparisons and callgrind) |"
            );
        }
        let _ = writeln!(
            md,
            "\n**Time ratio**: the median, over rounds, of a round's ratio of the variant's \
             time per iteration to its peer's; the variants run in interleaved rounds in one \
             process, so load on the machine slows them alike; **p10..p90** is the spread of \
             those per-round ratios. Below 1× is faster. **Instructions**: per iteration, \
             under callgrind, (I(N) − I(0)) / N, every thread counted. A goal's **met** \
             compares the median.\n"
        );

        // The goals first: what the reader wants to know.
        let mut goals = Vec::new();
        for group in &self.groups {
            for goal in &group.goals {
                let (measured, verdict) = group.judge(goal);
                goals.push((group, goal, measured, verdict));
            }
        }
        if !goals.is_empty() {
            let met = goals
                .iter()
                .filter(|(.., verdict)| *verdict == Verdict::Met)
                .count();
            let _ = writeln!(md, "## Goals\n\n{met} of {} goals met.\n", goals.len());
            let _ = writeln!(
                md,
                "| group | variant | goal | measured | met | from |\n|---|---|---|---|---|---|"
            );
            for (group, goal, measured, verdict) in &goals {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {measured} | {verdict} | {} |",
                    group.name,
                    goal.variant,
                    goal.describe(),
                    goal.source
                );
            }
            let _ = writeln!(md);
        }

        let time: Vec<&GroupResult> = self.groups.iter().filter(|g| !g.latency).collect();
        if !time.is_empty() {
            let _ = writeln!(md, "## Time and instructions\n");
            let _ = writeln!(
                md,
                "| group | variant | peer | time ratio | p10..p90 | ns/iter | instr/iter \
                 | instr ratio | goal |\n|---|---|---|--:|---|--:|--:|--:|---|"
            );
            for group in time {
                for row in &group.times {
                    let baseline = row.variant == group.baseline;
                    let ratio = if baseline {
                        "1 (peer)".to_owned()
                    } else {
                        times(row.ratio.median)
                    };
                    let instructions = if baseline {
                        None
                    } else {
                        group.instruction_ratio(&row.variant, &group.baseline)
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {ratio} | {} | {} | {} | {} | {} |",
                        group.name,
                        row.variant,
                        if baseline { "—" } else { &group.baseline },
                        if baseline {
                            String::new()
                        } else {
                            spread(row.ratio)
                        },
                        number(row.ns, 1),
                        number(row.instructions, 0),
                        times(instructions),
                        group.goal_cell(&row.variant, &group.baseline),
                    );
                }
                for row in &group.versus {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | | | {} | {} |",
                        group.name,
                        row.variant,
                        row.versus,
                        times(row.ratio.median),
                        spread(row.ratio),
                        times(group.instruction_ratio(&row.variant, &row.versus)),
                        group.goal_cell(&row.variant, &row.versus),
                    );
                }
            }
            let _ = writeln!(md);
        }

        let latency: Vec<&GroupResult> = self.groups.iter().filter(|g| g.latency).collect();
        if !latency.is_empty() {
            let _ = writeln!(md, "## Latency\n");
            let _ = writeln!(
                md,
                "| group | variant | p50 | p90 | p99 | max | goal |\n|---|---|--:|--:|--:|--:|---|"
            );
            for group in latency {
                for row in &group.latencies {
                    let [p50, p90, p99, max] = row.us.map(micros);
                    let _ = writeln!(
                        md,
                        "| {} | {} | {p50} | {p90} | {p99} | {max} | {} |",
                        group.name,
                        row.variant,
                        group.goal_cell(&row.variant, "-"),
                    );
                }
            }
            let _ = writeln!(md);
        }

        if !self.groups.is_empty() {
            let _ = writeln!(md, "## The groups\n");
            let _ = writeln!(
                md,
                "| group | bench | one iteration | measured | callgrind N | seconds (time + callgrind) |\n\
                 |---|---|---|---|--:|--:|"
            );
            for group in &self.groups {
                let seconds = match (group.time_s, group.callgrind_s) {
                    (Some(t), Some(c)) => format!("{t:.0} + {c:.0}"),
                    (Some(t), None) => format!("{t:.0}"),
                    _ => "—".to_owned(),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {seconds} |",
                    group.name,
                    group.bench,
                    group.about.replace('|', "\\|"),
                    group.measured,
                    if group.latency || group.callgrind_n == 0 {
                        "—".to_owned()
                    } else {
                        group.callgrind_n.to_string()
                    },
                );
            }
        }
        md
    }

    /// The chart: one horizontal bar per time ratio of a variant to its
    /// peer, from 1× (a vertical line) to the median on a logarithmic axis,
    /// with a whisker from p10 to p90, and the goal's bound, where the
    /// group has one on that ratio, as a vertical mark across the bar.
    pub fn svg(&self) -> String {
        let bars = self.bars();
        let scale = Scale::fit(&bars);
        let height = TOP + bars.len() as f64 * ROW + BOTTOM;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
        );
        let title = format!(
            "awith: time ratio to the peer (median over rounds; whisker p10..p90; log scale){}",
            self.meta("commit")
                .map(|commit| format!(" — {commit}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            svg,
            r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
            escape(&title)
        );
        let bottom = TOP + bars.len() as f64 * ROW;
        // The grid and its labels.
        for tick in scale.ticks() {
            let x = scale.x(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/>"##,
                TOP - 4.0
            );
            let _ = writeln!(
                svg,
                r##"<text x="{x:.1}" y="{}" text-anchor="middle" fill="#555">{}×</text>"##,
                TOP - 8.0,
                trim(tick)
            );
        }
        // 1×, under the bars and the goals (a goal may be 1× itself).
        let unity = scale.x(1.0);
        let _ = writeln!(
            svg,
            r##"<line class="unity" x1="{unity:.1}" y1="{}" x2="{unity:.1}" y2="{bottom}" stroke="#000" stroke-width="1.5"/>"##,
            TOP - 4.0
        );
        let mut previous_group = "";
        for (index, bar) in bars.iter().enumerate() {
            let top = TOP + index as f64 * ROW;
            let middle = top + ROW / 2.0;
            if bar.group != previous_group && index > 0 {
                let _ = writeln!(
                    svg,
                    r##"<line x1="10" y1="{top}" x2="{}" y2="{top}" stroke="#999" stroke-width="0.5"/>"##,
                    WIDTH - 10.0
                );
            }
            previous_group = bar.group;
            let label = format!("{}: {} vs {}", bar.group, bar.variant, bar.versus);
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                PLOT_LEFT - 8.0,
                middle + 4.0,
                escape(&label)
            );
            let Some(median) = bar.ratio.median.filter(|r| *r > 0.0) else {
                continue;
            };
            let fill = match bar.verdict {
                Some(Verdict::Met) => "#4a9a5b",
                Some(Verdict::Missed) => "#c8553d",
                _ => "#6b8fb5",
            };
            let (a, b) = (scale.x(1.0), scale.x(median));
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{BAR}" fill="{fill}"><title>{}</title></rect>"#,
                a.min(b),
                middle - BAR / 2.0,
                (a - b).abs().max(1.0),
                escape(&format!("{label}: {}", times(Some(median))))
            );
            if let (Some(p10), Some(p90)) = (bar.ratio.p10, bar.ratio.p90)
                && p10 > 0.0
                && p90 > 0.0
            {
                let (l, r) = (scale.x(p10), scale.x(p90));
                let _ = writeln!(
                    svg,
                    r##"<path class="whisker" d="M{l:.1} {middle:.1}H{r:.1}M{l:.1} {:.1}V{:.1}M{r:.1} {:.1}V{:.1}" stroke="#222" fill="none"/>"##,
                    middle - 4.0,
                    middle + 4.0,
                    middle - 4.0,
                    middle + 4.0
                );
            }
            for bound in &bar.goals {
                let x = scale.x(bound.value());
                let _ = writeln!(
                    svg,
                    r##"<line class="goal" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e08a00" stroke-width="2.5"><title>goal: time ratio {}</title></line>"##,
                    top + 1.0,
                    top + ROW - 1.0,
                    operator_bound(*bound, bound.value())
                );
            }
            let text = format!(
                "{}  ({})",
                times(Some(median)),
                spread(bar.ratio).replace("..", "–")
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}">{}</text>"#,
                PLOT_LEFT + PLOT_WIDTH + 10.0,
                middle + 4.0,
                escape(&text)
            );
        }
        // The legend.
        let y = bottom + 22.0;
        let _ = writeln!(
            svg,
            r##"<rect x="10" y="{}" width="12" height="10" fill="#4a9a5b"/><text x="26" y="{y}">goal met</text><rect x="100" y="{}" width="12" height="10" fill="#c8553d"/><text x="116" y="{y}">goal missed</text><rect x="210" y="{}" width="12" height="10" fill="#6b8fb5"/><text x="226" y="{y}">no goal on this ratio</text><line x1="370" y1="{}" x2="370" y2="{}" stroke="#e08a00" stroke-width="2.5"/><text x="378" y="{y}">goal bound</text><text x="470" y="{y}">left of 1× (the black line): faster than the peer</text>"##,
            y - 10.0,
            y - 10.0,
            y - 10.0,
            y - 12.0,
            y + 2.0
        );
        let _ = writeln!(svg, "</svg>");
        svg
    }

    /// The chart's bars: per time group, each variant but the baseline
    /// against it, then the group's `versus` ratios.
    fn bars(&self) -> Vec<Bar<'_>> {
        let mut bars = Vec::new();
        for group in self.groups.iter().filter(|group| !group.latency) {
            let pairs = group
                .times
                .iter()
                .filter(|row| row.variant != group.baseline)
                .map(|row| (row.variant.as_str(), group.baseline.as_str(), row.ratio))
                .chain(
                    group
                        .versus
                        .iter()
                        .map(|row| (row.variant.as_str(), row.versus.as_str(), row.ratio)),
                );
            for (variant, versus, ratio) in pairs {
                let goals: Vec<&GoalRow> = group
                    .goals
                    .iter()
                    .filter(|goal| {
                        goal.variant == variant
                            && goal.versus == versus
                            && matches!(
                                goal.target,
                                Target::Ratio(Measure::Time | Measure::Throughput, _)
                            )
                    })
                    .collect();
                let verdicts: Vec<Verdict> = goals.iter().map(|goal| group.judge(goal).1).collect();
                let verdict = if verdicts.is_empty() {
                    None
                } else if verdicts.contains(&Verdict::Missed) {
                    Some(Verdict::Missed)
                } else if verdicts.iter().all(|v| *v == Verdict::Met) {
                    Some(Verdict::Met)
                } else {
                    Some(Verdict::NotMeasured)
                };
                let bounds: Vec<Bound> = goals
                    .iter()
                    .filter_map(|goal| match goal.target {
                        Target::Ratio(measure, bound) => Some(time_bound(measure, bound)),
                        Target::Percentile(..) => None,
                    })
                    .collect();
                bars.push(Bar {
                    group: &group.name,
                    variant,
                    versus,
                    ratio,
                    goals: bounds,
                    verdict,
                });
            }
        }
        bars
    }
}

/// A bound on a throughput ratio as the bound on the time ratio it is.
fn time_bound(measure: Measure, bound: Bound) -> Bound {
    match (measure, bound) {
        (Measure::Throughput, Bound::AtLeast(x)) => Bound::AtMost(1.0 / x),
        (Measure::Throughput, Bound::AtMost(x)) => Bound::AtLeast(1.0 / x),
        _ => bound,
    }
}

fn operator_bound(bound: Bound, value: f64) -> String {
    let operator = match bound {
        Bound::AtMost(_) => "≤",
        Bound::AtLeast(_) => "≥",
    };
    format!("{operator} {value:.3}×")
}

/// One bar of the chart.
#[derive(Debug)]
struct Bar<'r> {
    group: &'r str,
    variant: &'r str,
    versus: &'r str,
    ratio: Spread,
    /// The goals on this ratio, as bounds on the time ratio.
    goals: Vec<Bound>,
    verdict: Option<Verdict>,
}

const WIDTH: f64 = 1100.0;
/// Where the plot area starts (the labels are left of it) and how wide it is
/// (the figures are right of it).
const PLOT_LEFT: f64 = 390.0;
const PLOT_WIDTH: f64 = 520.0;
const TOP: f64 = 56.0;
const ROW: f64 = 22.0;
const BAR: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// The chart's logarithmic x axis, from `lo` to `hi` (powers of 2).
#[derive(Clone, Copy, Debug)]
struct Scale {
    lo: f64,
    hi: f64,
}

impl Scale {
    /// The powers of 2 around every ratio, spread and goal of `bars`, and at
    /// least 0.5× to 2×.
    fn fit(bars: &[Bar<'_>]) -> Scale {
        let values = bars.iter().flat_map(|bar| {
            [bar.ratio.median, bar.ratio.p10, bar.ratio.p90]
                .into_iter()
                .flatten()
                .chain(bar.goals.iter().map(|bound| bound.value()))
        });
        let (mut lo, mut hi) = (0.5_f64, 2.0_f64);
        for value in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(value);
            hi = hi.max(value);
        }
        Scale {
            lo: 2_f64.powf(lo.log2().floor()),
            hi: 2_f64.powf(hi.log2().ceil()),
        }
    }

    /// The x coordinate of `ratio`.
    fn x(self, ratio: f64) -> f64 {
        let at = (ratio.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        PLOT_LEFT + at.clamp(0.0, 1.0) * PLOT_WIDTH
    }

    /// The grid's ratios: the powers of 2, and 0.75×, 1.25× and 1.5×
    /// when the axis is short enough for them.
    fn ticks(self) -> Vec<f64> {
        let mut ticks = Vec::new();
        let mut tick = self.lo;
        while tick <= self.hi * 1.000_001 {
            ticks.push(tick);
            tick *= 2.0;
        }
        if self.hi / self.lo <= 16.0 {
            ticks.extend([0.75, 1.25, 1.5]);
        }
        ticks
    }
}

impl GroupResult {
    fn time(&self, variant: &str) -> Option<&TimeRow> {
        self.times.iter().find(|row| row.variant == variant)
    }

    /// The time ratio `variant / versus`: to the baseline, a `versus` row, or
    /// the inverse of one.
    fn time_ratio(&self, variant: &str, versus: &str) -> Option<Spread> {
        if versus == self.baseline {
            return self.time(variant).map(|row| row.ratio);
        }
        if let Some(row) = self
            .versus
            .iter()
            .find(|row| row.variant == variant && row.versus == versus)
        {
            return Some(row.ratio);
        }
        if variant == self.baseline {
            return self.time(versus).map(|row| row.ratio.inverse());
        }
        self.versus
            .iter()
            .find(|row| row.variant == versus && row.versus == variant)
            .map(|row| row.ratio.inverse())
    }

    fn instruction_ratio(&self, variant: &str, versus: &str) -> Option<f64> {
        let a = self.time(variant)?.instructions?;
        let b = self.time(versus)?.instructions?;
        (b > 0.0).then(|| a / b)
    }

    /// What was measured for `goal`, and whether it meets it.
    fn judge(&self, goal: &GoalRow) -> (String, Verdict) {
        let verdict = |value: Option<f64>, holds: &dyn Fn(f64) -> bool| match value {
            Some(value) if value.is_finite() => {
                if holds(value) {
                    Verdict::Met
                } else {
                    Verdict::Missed
                }
            }
            _ => Verdict::NotMeasured,
        };
        match goal.target {
            Target::Ratio(Measure::Time, bound) => {
                let ratio = self.time_ratio(&goal.variant, &goal.versus);
                let median = ratio.and_then(|r| r.median);
                (
                    ratio.map_or_else(
                        || "—".to_owned(),
                        |r| format!("{} ({})", times(r.median), spread(r)),
                    ),
                    verdict(median, &|r| bound.holds(r)),
                )
            }
            Target::Ratio(Measure::Throughput, bound) => {
                let ratio = self.time_ratio(&goal.variant, &goal.versus);
                let throughput = ratio.and_then(|r| r.median).map(|r| 1.0 / r);
                (
                    ratio.map_or_else(
                        || "—".to_owned(),
                        |r| {
                            format!(
                                "{} throughput (time {}, {})",
                                times(throughput),
                                times(r.median),
                                spread(r)
                            )
                        },
                    ),
                    verdict(throughput, &|r| bound.holds(r)),
                )
            }
            Target::Ratio(Measure::Instructions, bound) => {
                let ratio = self.instruction_ratio(&goal.variant, &goal.versus);
                (
                    ratio.map_or_else(|| "—".to_owned(), |r| times(Some(r))),
                    verdict(ratio, &|r| bound.holds(r)),
                )
            }
            Target::Percentile(percentile, at_most) => {
                let index = match percentile {
                    50 => Some(0),
                    90 => Some(1),
                    99 => Some(2),
                    100 => Some(3),
                    _ => None,
                };
                let value = self
                    .latencies
                    .iter()
                    .find(|row| row.variant == goal.variant)
                    .and_then(|row| index.and_then(|index| row.us[index]));
                (micros(value), verdict(value, &|us| us <= at_most))
            }
        }
    }

    /// The goals on the ratio `variant / versus` (or on `variant`'s
    /// latency, `versus` `-`), and their verdicts; `—` when there are none.
    fn goal_cell(&self, variant: &str, versus: &str) -> String {
        let cells: Vec<String> = self
            .goals
            .iter()
            .filter(|goal| goal.variant == variant && goal.versus == versus)
            .map(|goal| format!("{}: {}", goal.describe_short(), self.judge(goal).1))
            .collect();
        if cells.is_empty() {
            "—".to_owned()
        } else {
            cells.join("; ")
        }
    }
}

impl GoalRow {
    /// E.g. `time ≤ 1.10× hand-written`, `throughput ≥ 1.20× deadpool (time
    /// ≤ 0.833×)`, `p99 ≤ 5.00 ms`.
    fn describe(&self) -> String {
        match self.target {
            Target::Ratio(Measure::Throughput, bound) => format!(
                "{} {} (time {})",
                self.describe_short(),
                self.versus,
                operator_bound(time_bound(Measure::Throughput, bound), 1.0 / bound.value())
            ),
            Target::Ratio(..) => format!("{} {}", self.describe_short(), self.versus),
            Target::Percentile(..) => self.describe_short(),
        }
    }

    fn describe_short(&self) -> String {
        match self.target {
            Target::Ratio(measure, bound) => {
                let value = bound.value();
                let value = if value == value.round() {
                    format!("{value:.0}")
                } else {
                    trim(value)
                };
                let operator = match bound {
                    Bound::AtMost(_) => "≤",
                    Bound::AtLeast(_) => "≥",
                };
                format!("{measure} {operator} {value}×")
            }
            Target::Percentile(percentile, us) => format!("p{percentile} ≤ {}", micros(Some(us))),
        }
    }
}

/// `1.043×`, or `—`.
fn times(ratio: Option<f64>) -> String {
    match ratio {
        Some(ratio) if ratio.is_finite() => format!("{ratio:.3}×"),
        _ => "—".to_owned(),
    }
}

/// `0.981..1.102`, or empty.
fn spread(ratio: Spread) -> String {
    match (ratio.p10, ratio.p90) {
        (Some(p10), Some(p90)) => format!("{p10:.3}..{p90:.3}"),
        _ => String::new(),
    }
}

/// `812.4` (with `decimals`) below 10,000, `23,744,817` from there on; or `—`.
fn number(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) if value.abs() >= 10_000.0 => {
            let digits = format!("{:.0}", value.abs());
            let mut grouped = String::new();
            for (index, digit) in digits.chars().enumerate() {
                if index > 0 && (digits.len() - index).is_multiple_of(3) {
                    grouped.push(',');
                }
                grouped.push(digit);
            }
            if value < 0.0 {
                grouped.insert(0, '-');
            }
            grouped
        }
        Some(value) => format!("{value:.decimals$}"),
        None => "—".to_owned(),
    }
}

/// Microseconds as a person reads them (as the harness prints them), or `—`.
fn micros(us: Option<f64>) -> String {
    us.map_or_else(|| "—".to_owned(), crate::human)
}

/// A ratio without trailing zeros: `0.5`, `1.25`, `2`.
fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Text for an SVG's text nodes and attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Per group, the figures of the latest rows: used by tests.
#[cfg(test)]
impl Results {
    fn group(&self, name: &str) -> &GroupResult {
        self.groups
            .iter()
            .find(|group| group.name == name)
            .expect("the group is in the results")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of three groups: a scope group with goals on time and on
    /// instructions, a lock group with a `versus` ratio and a throughput
    /// goal on it, and a latency group.
    const TSV: &str = "\
# results.tsv
meta\tdate\t2026-01-02 03:04 UTC
meta\tmachine\t2 cores, Some CPU
meta\trustc\trustc 1.95.0
meta\tcommit\tabc1234
meta\tversion:awith\t0.1.0
meta\tversion:tokio\t1.47.1
meta\tseconds\t700
group\tscope\tscope\ttime\thand-written\t401 rounds x 100 iterations\t20000\t4.2\t6.5\tacquire -> body -> release
time\tscope\thand-written\t100.0\t1.000\t1.000\t1.000\t500.0
time\tscope\tawith\t104.0\t1.040\t0.980\t1.120\t600.0
goal\tscope\tawith\thand-written\ttime\t<=\t1.1\tissue 14
goal\tscope\tawith\thand-written\tinstructions\t<=\t1.15\tissue 14
group\tlock-uncontended-tokio\tlock\ttime\tfloor\t401 rounds x 5 iterations\t2000\t9\t30\tacquire + release
time\tlock-uncontended-tokio\tfloor\t50000.0\t1.000\t1.000\t1.000\t-
time\tlock-uncontended-tokio\tawith\t52000.0\t1.040\t1.000\t1.090\t-
time\tlock-uncontended-tokio\trslock\t60000.0\t1.200\t1.100\t1.300\t-
versus\tlock-uncontended-tokio\tawith\trslock\t0.870\t0.800\t0.950
goal\tlock-uncontended-tokio\tawith\tfloor\ttime\t<=\t1.05\tissue 12
goal\tlock-uncontended-tokio\tawith\trslock\tthroughput\t>=\t1\tissue 12
group\tlock-handoff-tokio\tlock\tlatency\tpolling\t500 samples\t0\t40\t-\ta hand-off
latency\tlock-handoff-tokio\tpolling\t50000\t90000\t99000\t100000
latency\tlock-handoff-tokio\tawith\t800\t2000\t6000\t9000
goal\tlock-handoff-tokio\tawith\t-\tp50\t<=\t1000\tissue 12
goal\tlock-handoff-tokio\tawith\t-\tp99\t<=\t5000\tissue 12
";

    fn results() -> Results {
        Results::parse(TSV).expect("the TSV parses")
    }

    #[test]
    fn parses_every_kind_of_line() {
        let results = results();
        assert_eq!(results.groups.len(), 3);
        assert_eq!(results.meta("commit"), Some("abc1234"));
        let scope = results.group("scope");
        assert_eq!(scope.baseline, "hand-written");
        assert_eq!(scope.callgrind_n, 20_000);
        assert_eq!(scope.time("awith").and_then(|row| row.ns), Some(104.0));
        assert_eq!(scope.goals.len(), 2);
        let lock = results.group("lock-uncontended-tokio");
        assert_eq!(lock.versus.len(), 1);
        assert_eq!(lock.time("awith").and_then(|row| row.instructions), None);
        let handoff = results.group("lock-handoff-tokio");
        assert!(handoff.latency);
        assert_eq!(handoff.latencies[1].us[2], Some(6000.0));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let error = |tsv: &str| Results::parse(tsv).expect_err("an error");
        assert!(error("nonsense\tx\n").contains("unknown kind"));
        assert!(error("time\tscope\tawith\t1\t1\t1\t1\t1\n").contains("no `group` line"));
        assert!(error("meta\tdate\n").contains("has 3 fields"));
        let bad = TSV.replace("104.0", "fast");
        assert!(error(&bad).contains("must be a number"));
    }

    #[test]
    fn the_table_has_a_row_per_variant_with_its_figures() {
        let md = results().markdown();
        assert!(
            md.contains(
                "| scope | awith | hand-written | 1.040× | 0.980..1.120 | 104.0 | 600 | 1.200× \
                 | time ≤ 1.1×: yes; instructions ≤ 1.15×: **no** |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| scope | hand-written | — | 1 (peer) |  | 100.0 | 500 | — | — |"),
            "{md}"
        );
        // A `versus` row, with its throughput goal met (1 / 0.87 ≥ 1).
        assert!(
            md.contains(
                "| lock-uncontended-tokio | awith | rslock | 0.870× | 0.800..0.950 | | | — \
                 | throughput ≥ 1×: yes |"
            ),
            "{md}"
        );
        // No goal: a dash; large figures grouped by thousands.
        assert!(md.contains("1.100..1.300 | 60,000 | — | — | — |"), "{md}");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(number(Some(812.44), 1), "812.4");
        assert_eq!(number(Some(9_999.0), 0), "9999");
        assert_eq!(number(Some(23_744_817.0), 1), "23,744,817");
        assert_eq!(number(Some(100_000.0), 0), "100,000");
        assert_eq!(number(None, 0), "—");
    }

    #[test]
    fn the_goals_are_judged() {
        let md = results().markdown();
        assert!(md.contains("4 of 6 goals met."), "{md}");
        assert!(
            md.contains(
                "| lock-uncontended-tokio | awith | throughput ≥ 1× rslock (time ≤ 1.000×) \
                 | 1.149× throughput (time 0.870×, 0.800..0.950) | yes | issue 12 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| lock-handoff-tokio | awith | p99 ≤ 5.00 ms | 6.00 ms | **no** | issue 12 |"
            ),
            "{md}"
        );
        assert!(md.contains("| lock-handoff-tokio | awith | 800 us | 2.00 ms | 6.00 ms | 9.00 ms | p50 ≤ 1.00 ms: yes; p99 ≤ 5.00 ms: **no** |"), "{md}");
    }

    #[test]
    fn the_header_names_the_machine_and_the_versions() {
        let md = results().markdown();
        assert!(md.contains("| machine | 2 cores, Some CPU |"), "{md}");
        assert!(md.contains("| awith | 0.1.0 |"), "{md}");
        assert!(md.contains("| peers (Cargo.lock) | tokio 1.47.1 |"), "{md}");
        assert!(
            md.contains("| `ci/bench.sh` took | 700 s (once built"),
            "{md}"
        );
    }

    /// The x of every `<line class="goal" …>` of `svg`.
    fn goal_lines(svg: &str) -> Vec<f64> {
        svg.lines()
            .filter(|line| line.starts_with(r#"<line class="goal""#))
            .map(|line| {
                let x = line
                    .split(r#"x1=""#)
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .expect("an x1");
                x.parse().expect("a number")
            })
            .collect()
    }

    #[test]
    fn the_chart_draws_each_goal_at_its_ratio() {
        let svg = results().svg();
        // Every figure lies within 0.5×..2×: the axis is that, 2 octaves.
        let x = |ratio: f64| PLOT_LEFT + (ratio.log2() + 1.0) / 2.0 * PLOT_WIDTH;
        let mut lines = goal_lines(&svg);
        lines.sort_by(f64::total_cmp);
        let mut want = [x(1.1), x(1.05), x(1.0)];
        want.sort_by(f64::total_cmp);
        assert_eq!(lines.len(), 3, "{svg}");
        for (line, want) in lines.iter().zip(want) {
            assert!((line - want).abs() < 0.06, "goal at {line}, not {want}");
        }
        // 1× in the middle; the throughput goal ≥ 1× is the time ratio ≤ 1×.
        assert!(svg.contains(&format!(r#"<line class="unity" x1="{:.1}""#, x(1.0))));
        // One bar per ratio to a peer: scope's awith, the lock's awith and
        // rslock to the floor, awith to rslock; no latency group.
        assert_eq!(svg.matches("<rect x=").count(), 4 + 3, "{svg}");
        assert!(!svg.contains("lock-handoff"));
    }

    #[test]
    fn a_throughput_goal_is_drawn_at_the_inverse_time_ratio() {
        let tsv = "\
group\tpool\tscope\ttime\tdeadpool\t401 rounds x 1 iterations\t20\t1\t1\tcheckouts
time\tpool\tdeadpool\t1000\t1\t1\t1\t-
time\tpool\tawith\t800\t0.8\t0.7\t0.9\t-
goal\tpool\tawith\tdeadpool\tthroughput\t>=\t1.25\tissue 14
";
        let svg = Results::parse(tsv).expect("parses").svg();
        let x = |ratio: f64| PLOT_LEFT + (ratio.log2() + 1.0) / 2.0 * PLOT_WIDTH;
        let lines = goal_lines(&svg);
        assert_eq!(lines.len(), 1);
        assert!(
            (lines[0] - x(0.8)).abs() < 0.06,
            "{} vs {}",
            lines[0],
            x(0.8)
        );
        // Met (0.8 ≤ 1/1.25): the bar is green.
        assert!(
            svg.contains(r##"fill="#4a9a5b"><title>pool: awith vs deadpool"##),
            "{svg}"
        );
    }

    #[test]
    fn the_axis_grows_to_fit_and_labels_are_escaped() {
        let tsv = "\
group\ta&b\tscope\ttime\tx<y\tm\t0\t1\t-\tabout
time\ta&b\tx<y\t1\t1\t1\t1\t-
time\ta&b\tz\t1\t5\t3\t9\t-
";
        let results = Results::parse(tsv).expect("parses");
        let scale = Scale::fit(&results.bars());
        assert_eq!((scale.lo, scale.hi), (0.5, 16.0));
        let svg = results.svg();
        assert!(svg.contains("a&amp;b: z vs x&lt;y"), "{svg}");
        assert!(!svg.contains("a&b"));
    }
}
