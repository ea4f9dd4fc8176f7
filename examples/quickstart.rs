//! The quickstart: builds a demo repository (a Windows VM with two disks, a
//! Linux Veeam Agent backup with an LVM volume group, a Key-Vault-encrypted
//! VM), plans each restore under each profile and prints the plans, runs the
//! ready ones against SimCloud with the disks written as fixed VHDs to the
//! local destination, verifies every disk against its source, and prints a
//! summary.
//!
//! `cargo run --release --example quickstart [-- --out DIR]`

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use vmrestore::demo;
use vmrestore::exec::{
    Event, ExecOptions, Executor, LocalVhdSink, Outcome, ProgressFn, SimCloud, SimConfig,
};
use vmrestore::model::Catalog;
use vmrestore::plan::{Planner, render_text};
use vmrestore::policy::{BUILTIN_PROFILES, Profile, human_bytes};
use vmrestore::vhd::parse_footer;

struct Row {
    restore: String,
    profile: String,
    verdict: String,
    outcome: String,
    disks: String,
    bytes: u64,
    secs: f64,
    ok: bool,
}

/// Whether the VHD at `vhd` holds exactly the source image (zero-padded to
/// `size`) followed by a valid footer of that size. Streams, 4 MiB at a time.
fn same_contents(
    vhd: &std::path::Path,
    src: &std::path::Path,
    size: u64,
) -> Result<bool, Box<dyn std::error::Error>> {
    use std::io::Read;
    let mut v = std::fs::File::open(vhd)?;
    if v.metadata()?.len() != size + 512 {
        return Ok(false);
    }
    let mut s = std::fs::File::open(src)?.take(size);
    let (mut a, mut b) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    let mut left = size;
    while left > 0 {
        let n = (4 << 20).min(left) as usize;
        v.read_exact(&mut a[..n])?;
        b[..n].fill(0);
        let mut got = 0;
        while got < n {
            let k = s.read(&mut b[got..n])?;
            if k == 0 {
                break;
            }
            got += k;
        }
        if a[..n] != b[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    let mut footer = [0u8; 512];
    v.read_exact(&mut footer)?;
    Ok(parse_footer(&footer)
        .map(|f| f.size == size)
        .unwrap_or(false))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = PathBuf::from("out");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            "-h" | "--help" => {
                println!("usage: quickstart [--out DIR]   (default: ./out)");
                return Ok(());
            }
            other => return Err(format!("unknown argument '{other}' (try --help)").into()),
        }
    }
    let t0 = Instant::now();
    let demo_dir = out.join("demo");
    if demo_dir.exists() {
        std::fs::remove_dir_all(&demo_dir)?;
    }
    println!("Building the demo repository in {} ...", demo_dir.display());
    let (repo, restores) = demo::build(&demo_dir)?;
    let repo = Arc::new(repo);
    let catalog = Catalog::builtin();
    let planner = Planner::new(&catalog)?;
    let mut rows = Vec::new();

    for r in &restores {
        for profile in BUILTIN_PROFILES {
            let plan = planner.plan(&r.restore_point, &r.request, &[Profile::builtin(profile)?])?;
            println!(
                "\n==================== {} under {profile} ====================\n",
                r.name
            );
            print!("{}", render_text(&plan));
            let mut row = Row {
                restore: r.name.into(),
                profile: profile.into(),
                verdict: format!("{:?}", plan.verdict).to_lowercase(),
                outcome: "-".into(),
                disks: "-".into(),
                bytes: 0,
                secs: 0.0,
                ok: true,
            };
            if !plan.is_ready() {
                rows.push(row);
                continue;
            }
            let dest = out.join(format!("{}-{}", r.name, profile.replace('@', "-")));
            let sink = Arc::new(LocalVhdSink::new(&dest)?);
            let mp = MultiProgress::new();
            let bars: Arc<Mutex<HashMap<String, ProgressBar>>> = Arc::default();
            let style = ProgressStyle::with_template(
                "  {prefix:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )?
            .progress_chars("=> ");
            let (b, m, st) = (bars.clone(), mp.clone(), style.clone());
            let progress: ProgressFn = Arc::new(move |e: &Event| match e {
                Event::Bytes {
                    disk, done, total, ..
                } => {
                    let mut bars = b.lock().unwrap_or_else(|p| p.into_inner());
                    let bar = bars.entry(disk.clone()).or_insert_with(|| {
                        let pb = m.add(ProgressBar::new(*total));
                        pb.set_style(st.clone());
                        pb.set_prefix(disk.clone());
                        pb
                    });
                    bar.set_position(*done);
                }
                Event::StepRetried { step, error, .. } => {
                    let _ = m.println(format!("  retry {step}: {error}"));
                }
                _ => {}
            });
            println!(
                "\nRunning against SimCloud, disks to {} ...",
                dest.display()
            );
            let started = Instant::now();
            // A fresh simulated Azure per run: the same VM restored under
            // two profiles would otherwise collide on its names.
            let sim = SimCloud::new(SimConfig {
                latency: Duration::from_millis(5),
                lro: Duration::from_millis(40),
                ..Default::default()
            });
            let ex = Executor::new(Arc::new(sim), repo.clone())
                .with_sink(sink.clone())
                .with_options(ExecOptions::default());
            let report = ex
                .run(&plan, CancellationToken::new(), Some(progress))
                .await?;
            for bar in bars.lock().unwrap_or_else(|p| p.into_inner()).values() {
                bar.finish();
            }
            row.secs = started.elapsed().as_secs_f64();
            row.outcome = format!("{:?}", report.outcome).to_lowercase();
            if report.outcome != Outcome::Succeeded {
                row.ok = false;
                println!("  run {}: {:?}", row.outcome, report.error);
                rows.push(row);
                continue;
            }
            // Verify every disk: the VHD's contents equal the source image,
            // and its footer is valid.
            let mut ok = 0;
            for d in &plan.target.disks {
                let same = same_contents(
                    &sink.vhd_path(&d.name),
                    &demo::image_path(&demo_dir, r.name, &d.source_disk, d.volume_group.as_deref()),
                    d.size_bytes,
                )?;
                if same {
                    ok += 1;
                } else {
                    println!("  disk {} does NOT match its source", d.name);
                }
                row.bytes += d.bytes_to_write;
            }
            row.disks = format!("{ok}/{} verified", plan.target.disks.len());
            row.ok = ok == plan.target.disks.len();
            println!(
                "  {} in {:.1} s; report and template in {}",
                row.outcome,
                row.secs,
                dest.display()
            );
            rows.push(row);
        }
    }

    println!("\n==================== summary ====================\n");
    println!(
        "{:8} {:18} {:8} {:10} {:14} {:>10} {:>7}",
        "restore", "profile", "verdict", "outcome", "disks", "data", "secs"
    );
    for r in &rows {
        println!(
            "{:8} {:18} {:8} {:10} {:14} {:>10} {:>7.1}",
            r.restore,
            r.profile,
            r.verdict,
            r.outcome,
            r.disks,
            if r.bytes > 0 {
                human_bytes(r.bytes).to_string()
            } else {
                "-".into()
            },
            r.secs
        );
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!(
        "\n{} plans, {} ran, {} failed; finished in {:.1} s. Output in {}.",
        rows.len(),
        rows.iter().filter(|r| r.outcome != "-").count(),
        failed,
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
