use std::time::Instant;
fn main() {
    let lines: Vec<String> = (0..200_000)
        .map(|i| format!("Nov 22 05:30:43 web-1 sshd[{}]: Failed password for invalid user user{} from 10.0.{}.{} port {} ssh2", 1000 + i % 5000, i % 97, (i >> 8) & 255, i & 255, 20000 + i % 40000))
        .collect();
    let t = Instant::now();
    let mut n = 0;
    for l in &lines {
        n += soc_normalize::map_record(&soc_sm_abi::Input {
            value: l.as_bytes(),
            timestamp_ms: 1_795_000_000_000,
        })
        .len();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "normalize native: {:.0} lines/s ({} bytes)",
        lines.len() as f64 / s,
        n
    );
    let t = Instant::now();
    let mut parse_only = 0;
    for l in &lines {
        parse_only += soc_normalize::normalize_line(l, 1_795_000_000_000)
            .message
            .map_or(0, |m| m.len());
    }
    println!(
        "parse only: {:.0} lines/s {}",
        lines.len() as f64 / t.elapsed().as_secs_f64(),
        parse_only
    );
}
