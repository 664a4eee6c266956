use std::collections::BTreeMap;
use std::time::Instant;
fn main() {
    let ev = br#"{"@timestamp":"2026-11-22T05:30:43.000Z","event":{"kind":"event","category":["authentication"],"type":["info"],"action":"ssh_login","outcome":"failure","dataset":"sshd","reason":"password, invalid user","ingested":"2026-11-22T05:30:43.932Z"},"message":"Failed password for invalid user user0 from 10.0.0.0 port 20000 ssh2","source":{"ip":"10.0.0.0","port":20000},"user":{"name":"user0"},"host":{"hostname":"web-1"},"process":{"name":"sshd","pid":1000},"log":{"original":"Nov 22 05:30:43 web-1 sshd[1000]: Failed password for invalid user user0 from 10.0.0.0 port 20000 ssh2","syslog":{"appname":"sshd","procid":"1000","version":"rfc3164"}}}"#;
    let mut p = BTreeMap::new();
    p.insert(
        "drop_actions".to_string(),
        "session_opened,session_closed".to_string(),
    );
    let c = soc_filter::FilterConfig::from_params(&p).unwrap();
    let t = Instant::now();
    let mut k = 0;
    for _ in 0..1_000_000 {
        if c.keep(std::hint::black_box(ev)) {
            k += 1;
        }
    }
    println!(
        "filter native: {:.0}/s {k}",
        1e6 / t.elapsed().as_secs_f64()
    );
}
