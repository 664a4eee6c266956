//! The normalized event: what the `normalize` SmartModule emits and every detection reads.
//!
//! Field names follow the Elastic Common Schema (ECS) so rules written for other tools map
//! onto ours. Only the fields a parser actually found are serialized.

use serde::{Deserialize, Serialize};

/// `event.kind` of a line that no parser recognized. It is kept, never dropped.
pub const KIND_UNPARSED: &str = "unparsed";
/// `event.kind` of a line that was parsed.
pub const KIND_EVENT: &str = "event";
/// `event.action` of BSD syslogd's `last message repeated N times`: the host's previous
/// line again, `event.attempts` times. Only the processor knows which line that was.
pub const ACTION_REPEATED: &str = "syslog_repeated";

/// Trailer of a raw record whose line was cut to the size limit: the record is the cut line,
/// `\n`, this prefix and the line's full size in bytes. A line never holds `\n`, so what
/// a log line says cannot pass for the trailer.
pub const TRUNCATED_TRAILER: &str = "soc.truncated_bytes=";

/// Trailer giving the year of a line whose timestamp has none (an archive replayed with
/// `--year`): `\n`, this prefix and the year.
pub const YEAR_TRAILER: &str = "soc.year=";

/// Trailer giving the address a line was received from (a syslog sender, an HTTP
/// client): `\n`, this prefix and the IP address.
pub const PEER_TRAILER: &str = "soc.peer=";

/// What the shipper knew about a line that the line itself does not say, carried in
/// trailers after it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineNotes {
    /// The full size of a line that was cut.
    pub truncated_bytes: Option<u64>,
    /// The year of a timestamp written without one.
    pub year: Option<i32>,
    /// The address the line was received from over the network.
    pub peer: Option<std::net::IpAddr>,
}

/// The raw record of a line cut to the size limit, tagged with its full size.
pub fn truncated_record(cut: &[u8], full_bytes: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(cut.len() + TRUNCATED_TRAILER.len() + 21);
    v.extend_from_slice(cut);
    push_trailer(&mut v, TRUNCATED_TRAILER, &full_bytes.to_string());
    v
}

/// Add the year trailer to a raw record.
pub fn with_year(mut record: Vec<u8>, year: i32) -> Vec<u8> {
    push_trailer(&mut record, YEAR_TRAILER, &year.to_string());
    record
}

/// Add the sender's address to a raw record.
pub fn with_peer(mut record: Vec<u8>, peer: std::net::IpAddr) -> Vec<u8> {
    push_trailer(&mut record, PEER_TRAILER, &peer.to_string());
    record
}

fn push_trailer(v: &mut Vec<u8>, prefix: &str, value: &str) {
    v.push(b'\n');
    v.extend_from_slice(prefix.as_bytes());
    v.extend_from_slice(value.as_bytes());
}

/// A raw record's line and the notes trailing it. Text after the last `\n` that is not a
/// known trailer belongs to the line.
pub fn split_notes(raw: &str) -> (&str, LineNotes) {
    let mut notes = LineNotes::default();
    let mut line = raw;
    while let Some((head, trailer)) = line.rsplit_once('\n') {
        let trailer = trailer.trim_end_matches('\r');
        if let Some(n) = trailer.strip_prefix(TRUNCATED_TRAILER) {
            match n.parse() {
                Ok(full) if notes.truncated_bytes.is_none() => notes.truncated_bytes = Some(full),
                _ => break,
            }
        } else if let Some(a) = trailer.strip_prefix(PEER_TRAILER) {
            match a.parse() {
                Ok(ip) if notes.peer.is_none() => notes.peer = Some(ip),
                _ => break,
            }
        } else if let Some(y) = trailer.strip_prefix(YEAR_TRAILER) {
            match y.parse() {
                Ok(year) if notes.year.is_none() => notes.year = Some(year),
                _ => break,
            }
        } else {
            break;
        }
        line = head;
    }
    (line, notes)
}

/// A raw record's line, and the full size of the line when it was cut.
pub fn split_truncated(raw: &str) -> (&str, Option<u64>) {
    let (line, notes) = split_notes(raw);
    (line, notes.truncated_bytes)
}

/// One normalized event, serialized as JSON with ECS field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When the event happened (RFC 3339, UTC). Detections count windows in this time.
    #[serde(
        rename = "@timestamp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub event: EventInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<UserAgent>,
    /// The service the event concerns (`ssh`, `http`, `ftp`, `smtp`, `imap`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// The detection rule of an IDS alert (Suricata signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub log: Log,
    /// The decoded object of a JSON log line, kept whole (like Filebeat's `decode_json_fields`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventInfo {
    /// `event` for a parsed line, `unparsed` for a line no parser recognized.
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Vec::is_empty")]
    pub kind_type: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `success`, `failure` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Which parser produced the event, e.g. `sshd`, `nginx.access`, `syslog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The source's serial of the event (auditd: the records of one syscall share it with
    /// their timestamp, the key on which an EXECVE's arguments meet its SYSCALL's pid and
    /// user; the processor does not join them yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// What wrote the line inside its program, when it says (PAM's module: `pam_unix`,
    /// `pam_sss`): two modules that both log one attempt are two reports of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// How many attempts the line reports, when more than one: `message repeated 3 times`,
    /// PAM's `2 more authentication failures`, dovecot's `auth failed, 3 attempts`. Rules
    /// that count attempts (`count: attempts`) read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Severity as the source rates it (Suricata: 1 = high .. 3 = low).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u32>,
    /// When the line entered the pipeline (RFC 3339), for latency and for lines without a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The account a privilege change targets (`sudo -u`, `su`, `pkexec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetUser>,
    /// The effective account, when it differs from the real one (auditd `euid`): a process
    /// of an ordinary user running as root shows here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<TargetUser>,
    /// The login account (auditd `auid`), which survives `su` and `sudo`: who really acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<TargetUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentProcess>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParentProcess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Layer 4, lowercase: `tcp`, `udp`, `icmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Application protocol, lowercase: `http`, `dns`, `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<DnsQuestion>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsQuestion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<TlsClient>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsClient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Url {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Http {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserAgent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// The raw line exactly as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// Set when the line was cut to the size limit: its full size in bytes (the whole line is
    /// in the dead-letter topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<Syslog>,
    /// Where the line came from over the network (`log.source.address`, as Filebeat's
    /// network inputs write it): the sender, which may be a relay rather than the host the
    /// line speaks of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LogSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogSource {
    /// The sender's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Syslog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Code>,
    /// RFC 5424 APP-NAME, or the RFC 3164 tag's program name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// RFC 5424 structured data, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_data: Option<String>,
    /// `rfc3164` or `rfc5424`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Code {
    pub code: u8,
}

impl Event {
    /// An event for a line no parser recognized: kept whole, tagged, never an error.
    pub fn unparsed(line: &str) -> Self {
        Event {
            event: EventInfo {
                kind: KIND_UNPARSED.to_string(),
                ..Default::default()
            },
            log: Log {
                original: Some(line.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn is_unparsed(&self) -> bool {
        self.event.kind == KIND_UNPARSED
    }

    pub fn source_ip(&self) -> Option<&str> {
        self.source.as_ref()?.ip.as_deref()
    }

    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref()?.name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_come_off_in_any_order_and_only_known_ones() {
        let rec = with_year(truncated_record(b"Feb 1 00:00:00 h x: y", 9000), 2019);
        let rec = with_peer(rec, "2001:db8::7".parse().expect("ip"));
        let raw = String::from_utf8(rec).expect("utf-8");
        let (line, notes) = split_notes(&raw);
        assert_eq!(line, "Feb 1 00:00:00 h x: y");
        assert_eq!(notes.truncated_bytes, Some(9000));
        assert_eq!(notes.year, Some(2019));
        assert_eq!(notes.peer, "2001:db8::7".parse().ok());
        // A line cannot name its own sender: the trailer needs a newline no line holds.
        let (line, notes) = split_notes("x soc.peer=192.0.2.1");
        assert_eq!((line, notes.peer), ("x soc.peer=192.0.2.1", None));
        // Text after a newline that is not a trailer stays with the line.
        let (line, notes) = split_notes("a\nsoc.year=abc");
        assert_eq!((line, notes), ("a\nsoc.year=abc", LineNotes::default()));
        let (line, notes) = split_notes("a\nb");
        assert_eq!((line, notes.year), ("a\nb", None));
        // A repeated trailer is not read twice.
        let (line, notes) = split_notes("a\nsoc.year=2001\nsoc.year=2002");
        assert_eq!((line, notes.year), ("a\nsoc.year=2001", Some(2002)));
    }
}
