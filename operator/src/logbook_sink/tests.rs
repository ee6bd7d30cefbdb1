use std::time::{Duration, Instant};

use passport_crds::logbook::LogbookEntry;

use super::{
    advance_patch, backoff,
    event::{self, RequestView},
    gate::AuditGate,
    schedule::{PROBE_MAX, Report, Schedule, Waiting},
    sink::Failure,
};

fn view() -> RequestView {
    RequestView {
        uid: "0b6c-uid".into(),
        namespace: "team-a".into(),
        name: "db-fix".into(),
        requester: "alice@example.com".into(),
        ticket: Some("INC-7".into()),
        targets: vec!["i-0123456789abcdef0".into()],
    }
}

fn entry(seq: u64, action: &str) -> LogbookEntry {
    LogbookEntry {
        seq,
        time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-29T12:00:05Z".parse().expect("time"),
        ),
        action: action.into(),
        actor: "bob@example.com".into(),
        message: "approved by policy e2e".into(),
        warning: false,
    }
}

#[test]
fn event_carries_every_attribute_and_the_data() {
    let source = event::source("prod-eu", "passport-system");
    let built = event::build(&source, &view(), &entry(3, "approved")).expect("event");
    let json: serde_json::Value =
        serde_json::from_str(&event::to_json(&built).expect("json")).expect("parse");
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["id"], "0b6c-uid-3");
    assert_eq!(json["type"], "dev.passport.accessrequest.approved");
    assert_eq!(json["source"], "/passport/prod-eu/passport-system");
    assert_eq!(json["subject"], "team-a/db-fix");
    assert_eq!(json["time"], "2026-11-29T12:00:05Z");
    assert_eq!(json["datacontenttype"], "application/json");
    let data = &json["data"];
    assert_eq!(data["requestUID"], "0b6c-uid");
    assert_eq!(data["namespace"], "team-a");
    assert_eq!(data["name"], "db-fix");
    assert_eq!(data["requester"], "alice@example.com");
    assert_eq!(data["actor"], "bob@example.com");
    assert_eq!(data["action"], "approved");
    assert_eq!(data["reason"], "approved by policy e2e");
    assert_eq!(data["ticket"], "INC-7");
    assert_eq!(data["targets"], serde_json::json!(["i-0123456789abcdef0"]));
    assert_eq!(data["time"], "2026-11-29T12:00:05Z");
    assert_eq!(data["seq"], 3);
}

#[test]
fn event_id_is_stable_across_builds() {
    let source = event::source("kubernetes", "passport-system");
    let first = event::build(&source, &view(), &entry(1, "created")).expect("event");
    let again = event::build(&source, &view(), &entry(1, "created")).expect("event");
    assert_eq!(
        event::to_json(&first).expect("json"),
        event::to_json(&again).expect("json")
    );
}

#[test]
fn backoff_doubles_from_one_second_to_a_minute() {
    let delays: Vec<u64> = (0..10).map(|n| backoff::delay(n).as_secs()).collect();
    assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(backoff::delay(u32::MAX), Duration::from_secs(60));
}

fn waiting(uid: &str, oldest: i64) -> Waiting {
    Waiting {
        uid: uid.into(),
        oldest,
    }
}

fn report(uid: &str, acked: u64, sent: usize, failure: Option<Failure>) -> Report {
    Report {
        uid: uid.into(),
        acked,
        sent,
        failure,
    }
}

#[test]
fn one_turn_per_request_at_a_time() {
    let mut schedule = Schedule::default();
    let now = Instant::now();
    let all = [waiting("a", 1), waiting("b", 2)];
    assert_eq!(schedule.pick(&all, now, 4), ["a", "b"]);
    // Both in flight: nothing more for either until their turn ends (order per request).
    assert!(schedule.pick(&all, now, 4).is_empty());
    schedule.done(&report("a", 5, 5, None), now);
    assert_eq!(schedule.acked("a"), 5);
    assert_eq!(schedule.pick(&all, now, 4), ["a"]);
}

#[test]
fn a_failing_request_backs_off_and_does_not_block_others() {
    let mut schedule = Schedule::default();
    let now = Instant::now();
    let all = [waiting("slow", 1), waiting("b", 2), waiting("c", 3)];
    assert_eq!(schedule.pick(&all, now, 1), ["slow"]);
    schedule.done(&report("slow", 0, 0, Some(Failure::Http4xx)), now);
    assert_eq!(schedule.backoff_left("slow", now), Duration::from_secs(1));
    // The failing one waits its backoff; the others are served meanwhile, least recently served first.
    assert_eq!(schedule.pick(&all, now, 1), ["b"]);
    schedule.done(&report("b", 1, 1, None), now);
    assert_eq!(schedule.pick(&all, now, 1), ["c"]);
    schedule.done(&report("c", 1, 1, None), now);
    // A 4xx is this request's problem: another request's success does not cut its backoff.
    assert_eq!(schedule.backoff_left("slow", now), Duration::from_secs(1));
    let later = now + Duration::from_secs(1);
    assert_eq!(schedule.pick(&all, later, 1), ["slow"]);
    schedule.done(&report("slow", 0, 0, Some(Failure::Http4xx)), later);
    assert_eq!(schedule.backoff_left("slow", later), Duration::from_secs(2));
    assert_eq!(schedule.next_retry(), Some(later + Duration::from_secs(2)));
}

#[test]
fn the_sink_coming_back_ends_every_sink_wide_backoff() {
    let mut schedule = Schedule::default();
    let now = Instant::now();
    let all = [waiting("a", 1), waiting("b", 2), waiting("c", 3)];
    // The sink is down: a and b fail on it again and again; c is refused for its own sake.
    for _ in 0..7 {
        schedule.done(&report("a", 0, 0, Some(Failure::Connect)), now);
        schedule.done(&report("b", 0, 0, Some(Failure::Http5xx)), now);
        schedule.done(&report("c", 0, 0, Some(Failure::Http4xx)), now);
    }
    assert!(schedule.outage());
    assert_eq!(schedule.backoff_left("a", now), Duration::from_secs(60));
    assert_eq!(schedule.backoff_left("b", now), Duration::from_secs(60));
    // During the outage one request at a time probes the sink, every few seconds at most even
    // though their own backoffs are at a minute.
    assert_eq!(schedule.next_retry(), Some(now + PROBE_MAX));
    assert!(schedule.pick(&all, now + Duration::from_secs(1), 4).is_empty());
    let probe_time = now + PROBE_MAX;
    let probe = schedule.pick(&all, probe_time, 4);
    assert_eq!(probe.len(), 1, "{probe:?}");
    assert_ne!(probe[0], "c", "a request refused for its own sake is no probe");
    assert!(schedule.pick(&all, probe_time, 4).is_empty());
    schedule.done(&report(&probe[0], 0, 0, Some(Failure::Connect)), probe_time);
    assert_eq!(schedule.next_retry(), Some(probe_time + PROBE_MAX));
    // It is back: a turn in which the sink takes events lets the other sink-wide failures retry
    // at once, but not the one the sink refused for its own sake (4xx).
    let back = now + Duration::from_secs(1);
    schedule.done(&report("a", 3, 3, None), back);
    assert!(!schedule.outage());
    assert_eq!(schedule.backoff_left("b", back), Duration::ZERO);
    assert_eq!(schedule.backoff_left("c", back), Duration::from_secs(59));
    let mut next = schedule.pick(&all, back, 4);
    next.sort();
    assert_eq!(next, ["a", "b"]);
}

#[test]
fn one_request_failing_alone_backs_off_alone() {
    let mut schedule = Schedule::default();
    let mut now = Instant::now();
    let all = [waiting("poison", 1), waiting("b", 2)];
    for round in 1..=5u32 {
        // The sink chokes (500) on one request's record and takes the other's.
        schedule.done(&report("poison", 0, 0, Some(Failure::Http5xx)), now);
        schedule.done(&report("b", u64::from(round), 1, None), now);
        assert!(!schedule.outage());
        assert_eq!(schedule.backoff_left("poison", now), backoff::delay(round));
        assert_eq!(schedule.pick(&all, now, 4), ["b"]);
        schedule.done(&report("b", u64::from(round), 0, None), now);
        now += Duration::from_millis(10);
    }
}

#[test]
fn forgotten_requests_leave_the_schedule() {
    let mut schedule = Schedule::default();
    let now = Instant::now();
    assert_eq!(schedule.pick(&[waiting("a", 1)], now, 4), ["a"]);
    schedule.retain(|_| false);
    // In flight: kept until its turn ends.
    assert_eq!(schedule.in_flight(), 1);
    schedule.done(&report("a", 2, 2, None), now);
    schedule.retain(|_| false);
    assert_eq!(schedule.acked("a"), 0);
}

#[test]
fn advance_is_fenced_on_uid_and_old_value() {
    let patch = serde_json::to_value(advance_patch("u1", 0, 4).expect("patch")).expect("json");
    assert_eq!(
        patch,
        serde_json::json!([
            { "op": "test", "path": "/metadata/uid", "value": "u1" },
            { "op": "test", "path": "/status/logbook/delivered", "value": null },
            { "op": "add", "path": "/status/logbook/delivered", "value": 4 },
        ])
    );
    let patch = serde_json::to_value(advance_patch("u1", 4, 9).expect("patch")).expect("json");
    assert_eq!(patch[1]["value"], 4);
    assert_eq!(patch[2]["value"], 9);
}

#[test]
fn gate_fails_closed_at_the_limit() {
    let gate = AuditGate::new(3);
    assert!(!gate.open(), "closed until the backlog is counted");
    gate.set_backlog(2);
    assert!(gate.open());
    gate.set_backlog(3);
    assert!(!gate.open());
    assert!(
        gate.reason()
            .is_some_and(|r| r.contains("3 Logbook records") && r.contains("limit 3"))
    );
    assert!(gate.delivering());
    let disabled = AuditGate::disabled();
    assert!(disabled.open() && !disabled.delivering());
    let stdout = AuditGate::stdout_only();
    assert!(stdout.open() && stdout.delivering());
}

#[test]
fn failure_labels_are_snake_case() {
    assert_eq!(Failure::Http5xx.as_str(), "http_5xx");
    assert_eq!(Failure::StatusWrite.as_str(), "status_write");
    assert!(Failure::Connect.sink_wide() && !Failure::Http4xx.sink_wide());
}

#[derive(Debug, clap::Parser)]
struct Flags {
    #[command(flatten)]
    sink: super::SinkArgs,
}

fn parse(args: &[&str]) -> Result<super::SinkArgs, clap::Error> {
    <Flags as clap::Parser>::try_parse_from(std::iter::once("passport-operator").chain(args.iter().copied()))
        .map(|flags| flags.sink)
}

#[test]
fn flags_take_http_and_https_sinks_only() {
    let args = parse(&[]).expect("no flags");
    assert!(args.sink.is_none() && !args.stdout);
    assert_eq!(args.backlog_limit, 10_000);
    assert_eq!(args.cluster_name, "kubernetes");
    let args = parse(&[
        "--logbook-sink=https://audit.example.com/events",
        "--logbook-sink-ca=/etc/passport/sink-ca.pem",
        "--logbook-sink-auth-secret=audit-token",
        "--logbook-stdout",
        "--logbook-backlog-limit=50",
        "--cluster-name=prod-eu",
    ])
    .expect("every flag");
    assert_eq!(
        args.sink.map(|u| u.to_string()).as_deref(),
        Some("https://audit.example.com/events")
    );
    assert!(args.stdout);
    assert_eq!(args.backlog_limit, 50);
    assert!(parse(&["--logbook-sink=ftp://audit.example.com/"]).is_err());
    assert!(parse(&["--logbook-sink=not a url"]).is_err());
    // A CA or an auth Secret means nothing without a sink.
    assert!(parse(&["--logbook-sink-ca=/ca.pem"]).is_err());
    assert!(parse(&["--logbook-stdout", "--logbook-sink-auth-secret=s"]).is_err());
}

#[test]
fn a_bad_ca_bundle_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("passport-sink-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let url = reqwest::Url::parse("https://audit.example.com/").expect("url");
    let err = super::sink::HttpSink::new(url.clone(), Some(&empty), None).expect_err("no certificate");
    assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
    assert!(super::sink::HttpSink::new(url.clone(), Some(&dir.join("missing.pem")), None).is_err());
    assert!(
        super::sink::HttpSink::new(url, None, None).is_ok(),
        "system roots"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lone_request_probes_a_down_sink_every_few_seconds() {
    let mut schedule = Schedule::default();
    let mut now = Instant::now();
    let all = [waiting("a", 1)];
    for _ in 0..10 {
        let picked = schedule.pick(&all, now, 4);
        assert_eq!(picked, ["a"]);
        schedule.done(&report("a", 0, 0, Some(Failure::Timeout)), now);
        let next = schedule.next_retry().expect("a retry");
        assert!(next - now <= PROBE_MAX, "{:?}", next - now);
        now = next;
    }
    assert!(schedule.backoff_left("a", now) > PROBE_MAX);
}
