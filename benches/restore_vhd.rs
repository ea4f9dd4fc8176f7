//! Restore a 4 GiB sparse disk (1 GiB of data) from the local repository to
//! a fixed VHD, against `qemu-img convert -f raw -O vpc -o
//! subformat=fixed,force_size=on` of the same raw image, alternating runs in
//! one invocation (a warm-up of each first, so the page cache is warm for
//! both). Each run is a separate process measured with /usr/bin/time for
//! wall time and peak RSS. Prints medians and the ratio.
//!
//! `cargo bench --bench restore_vhd [-- RUNS]`

use std::path::{Path, PathBuf};
use std::process::Command;

use vmrestore::repo::{DEFAULT_CHUNK_SIZE, LocalRepository};
use vmrestore::vhd::restore_disk_to_vhd;

const SIZE: u64 = 4 << 30;
const DATA: u64 = 1 << 30;

fn make_image(path: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(path).unwrap();
    f.set_len(SIZE).unwrap();
    // 1 GiB of data in 8 MiB extents spread over the disk (every 4th slot).
    let extent = 8u64 << 20;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; extent as usize];
    for k in 0..DATA / extent {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all_at(&buf, k * 4 * extent).unwrap();
    }
}

fn restore_point() -> vmrestore::model::RestorePoint {
    vmrestore::model::from_json(&format!(
        r#"{{"id": "bench", "time": "2026-11-21T00:00:00Z", "backup": {{"kind": "vmware"}},
            "vm": {{"name": "bench", "subscription_id": "11111111-1111-1111-1111-111111111111", "region": "westeurope",
                    "os": {{"family": "linux"}}, "size": "Standard_D2s_v5",
                    "disks": [{{"name": "disk0", "role": "os", "size_bytes": {SIZE}}}]}}}}"#
    ))
    .unwrap()
}

fn timed(cmd: &mut Command) -> (f64, u64) {
    let out = cmd
        .output()
        .expect("run /usr/bin/time (Debian package 'time')");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    let secs: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    let kb: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (secs, kb)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Child mode: one restore, timed by the parent.
    if args.len() == 4 && args[1] == "--restore-once" {
        let repo = LocalRepository::open(&args[2]).unwrap();
        let m = repo.manifest("bench").unwrap();
        restore_disk_to_vhd(&repo, &m, "disk0", Path::new(&args[3])).unwrap();
        return;
    }
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // the measurement runs only under `cargo bench`.
    if !args.iter().any(|a| a == "--bench") {
        println!("restore_vhd: skipped (run it with cargo bench --bench restore_vhd)");
        return;
    }
    let runs: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "target/bench-restore-vhd".into()),
    );
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join("source.raw");
    let repo_dir = dir.join("repo");
    if !raw.exists() || !repo_dir.join("restore-points/bench/manifest.json").exists() {
        eprintln!(
            "preparing a 4 GiB sparse image with 1 GiB of data and its backup in {} ...",
            dir.display()
        );
        make_image(&raw);
        let _ = std::fs::remove_dir_all(&repo_dir);
        let repo = LocalRepository::create(&repo_dir).unwrap();
        repo.import_raw(
            &restore_point(),
            &[("disk0", raw.as_path())],
            DEFAULT_CHUNK_SIZE,
        )
        .unwrap();
    }
    let me = std::env::current_exe().unwrap();
    let ours_out = dir.join("ours.vhd");
    let qemu_out = dir.join("qemu.vhd");
    let ours = || {
        timed(
            Command::new("/usr/bin/time")
                .args(["-f", "%e %M"])
                .arg(&me)
                .arg("--restore-once")
                .arg(&repo_dir)
                .arg(&ours_out),
        )
    };
    let qemu = || {
        timed(
            Command::new("/usr/bin/time")
                .args([
                    "-f",
                    "%e %M",
                    "qemu-img",
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vpc",
                    "-o",
                    "subformat=fixed,force_size=on",
                ])
                .arg(&raw)
                .arg(&qemu_out),
        )
    };
    // Warm-up, then alternate.
    ours();
    qemu();
    let (mut to, mut tq, mut mo, mut mq) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let (a, b) = if i % 2 == 0 {
            (ours(), qemu())
        } else {
            let q = qemu();
            (ours(), q)
        };
        to.push(a.0);
        mo.push(a.1 as f64);
        tq.push(b.0);
        mq.push(b.1 as f64);
    }
    // Both outputs must be the same disk.
    let cmp = Command::new("qemu-img")
        .args(["compare", "-f", "vpc", "-F", "vpc"])
        .arg(&ours_out)
        .arg(&qemu_out)
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "outputs differ: {}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    let (o, q) = (median(to), median(tq));
    println!("restore 4 GiB disk (1 GiB data) to fixed VHD, {runs} alternating runs, medians:");
    println!(
        "  vmrestore (SHA-256 of every chunk) {o:.2} s, peak RSS {:.0} MiB",
        median(mo) / 1024.0
    );
    println!(
        "  qemu-img convert                   {q:.2} s, peak RSS {:.0} MiB",
        median(mq) / 1024.0
    );
    println!("  ratio vmrestore / qemu-img         {:.2}", o / q);
}
