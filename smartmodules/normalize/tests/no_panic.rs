//! `normalize_line` must never panic, whatever the input: every corpus line, every prefix of
//! it (cut at any character boundary, as a truncated datagram would be), and rsyslog's fuzz
//! seeds are normalized, and each result must still carry the line it came from.

mod common;

use soc_normalize::normalize_line;

fn check_prefixes(line: &str) {
    let step = if line.len() > 400 { 5 } else { 1 };
    for (n, (i, _)) in line.char_indices().enumerate() {
        if n % step == 0 {
            let ev = normalize_line(&line[..i], common::RECEIVED_MS);
            assert!(ev.log.original.is_some());
        }
    }
    let ev = normalize_line(line, common::RECEIVED_MS);
    assert_eq!(
        ev.log.original.as_deref(),
        Some(line.trim_end_matches(['\r', '\n']))
    );
}

#[test]
fn corpus_lines_and_their_prefixes() {
    let Some(path) = common::corpus("crowdsec-hub/parser_lines.jsonl") else {
        return;
    };
    for rec in common::read_jsonl(&path) {
        if let Some(line) = rec["line"].as_str() {
            check_prefixes(line);
        }
    }
}

#[test]
fn rsyslog_fuzz_seeds() {
    let Some(dir) = common::corpus("syslog-vectors/rsyslog/fuzz-corpus-syslog-message") else {
        return;
    };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("readable") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            check_prefixes(line);
            n += 1;
        }
    }
    println!("{n} fuzz seed lines normalized");
}

#[test]
fn hostile_fragments() {
    for line in [
        "type=EXECVE msg=audit(99999999999999999999.999:1): argc=3 a0=F a1=GG a2",
        "type=SYSCALL msg=audit(1.1:1): pid=-1 ppid=x uid=4294967295 exe=",
        "2021/12/01 13:53:33 [error] 1#1: *1 x, client: , request: \"",
        "[Thu Oct 13 12:24:49.880562 2022] [a:b] [client ]",
        "[10/Feb/2024:21:25:15 +0100] - - - [Client 1.2.3.4]",
        "07/11/2022-10:29:01.8  [**] [::] x [**] {TCP} -> ",
        "Jan  1 00:00:00 h kernel: IN= SRC=",
        "Jan  1 00:00:00 h filterlog: ,,,,,,,,4,,,,,,,,,,,",
        "Jan  1 00:00:00 h sudo: : ; ; USER=",
        "Jan  1 00:00:00 h pkexec: a: b [USER=",
        "Jan  1 00:00:00 h dovecot: auth: x(,): unknown user",
        "Jan  1 00:00:00 h proftpd[1]: ( [) - USER",
        "Jan  1 00:00:00 h sshd[1]: refused connect from (",
        "{\"event_type\":\"alert\",\"src_ip\":\"1.2.3.4\",\"timestamp\":\"é\",\"alert\":{\"severity\":1e99}}",
        "{\"message\":\"x: {\\\"a\\\":1}\"}",
        "<13>1 - - - - - [",
        "1 <",
        "\u{feff}<13>Jan  1 00:00:00 h é: ü",
    ] {
        check_prefixes(line);
    }
}
