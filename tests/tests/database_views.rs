//! Database and DNS protocol views of real recordings: psql and psycopg against PostgreSQL,
//! redis-cli against Redis, dig against dnsmasq. The conversations view lists each query,
//! command and lookup with its result, and the pcapng export carries the DNS datagrams.
//! See: issue #15.

use std::process::Command;

use recorder_tests::{
    require_privileges,
    servers::{free_port, start_server, Postgres},
    views::{conversations, exchanges, export, record, recorder, tshark},
};
use serde_json::Value;

#[test]
fn postgres_queries_show_their_tags_rows_errors_and_parameters() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let password = "pg-views-Jr4Lq8Vz";
    let db = work.path().join("db");
    std::fs::create_dir(&db).unwrap();
    let postgres = Postgres::start(&db, password, &[], &[]);
    let conninfo = postgres.conninfo();
    // Simple queries from psql; the INSERT's parameters go through the extended protocol
    // (psycopg binds server-side: Parse, Bind, Execute, Sync).
    let insert = format!(
        "import psycopg\n\
         with psycopg.connect('{conninfo}') as db:\n\
         \x20   db.execute('INSERT INTO pets (id, name) VALUES (%s, %s), (%s, %s), (%s, %s)', (1, 'ann', 2, 'bob', 3, 'cy'))\n"
    );
    let script = format!(
        "psql -X '{conninfo}' -c 'CREATE TABLE pets (id int, name text)' >&2 && \
         /usr/bin/python3 -c \"$INSERT\" && \
         ! psql -X '{conninfo}' -c 'SELECT * FROM no_such_table' 2>/dev/null && \
         psql -X '{conninfo}' -c 'SELECT id, name FROM pets ORDER BY id' >&2"
    );
    let segment = record(
        &work.path().join("rec"),
        &[],
        &["sh", "-c", &script],
        &[("PGPASSWORD", password), ("INSERT", &insert)],
    );
    let all = exchanges(&conversations(&segment, &["--proto", "postgres"]));
    let find = |sql: &str| {
        all.iter()
            .find(|e| {
                e["postgres"]["sql"]
                    .as_str()
                    .is_some_and(|s| s.contains(sql))
            })
            .unwrap_or_else(|| panic!("no exchange with {sql:?}: {all:#?}"))
    };
    let create = &find("CREATE TABLE pets")["postgres"];
    assert_eq!(
        (create["kind"].as_str(), create["tags"][0].as_str()),
        (Some("query"), Some("CREATE TABLE"))
    );
    let insert = &find("INSERT INTO pets")["postgres"];
    assert_eq!(insert["kind"].as_str(), Some("extended"));
    // A mispaired exchange shows as another's tag here: all of them, to tell which.
    assert_eq!(insert["tags"][0].as_str(), Some("INSERT 0 3"), "{all:#?}");
    assert_eq!(insert["rows"].as_u64(), Some(3));
    assert_eq!(insert["params"].as_array().unwrap().len(), 6, "{insert}");
    assert_eq!(insert["params"][1].as_str(), Some("ann"));
    let failed = find("no_such_table");
    assert_eq!(
        failed["postgres"]["error"]["code"].as_str(),
        Some("42P01"),
        "{failed}"
    );
    assert_eq!(failed["error"], Value::Bool(true));
    let select = find("SELECT id, name FROM pets");
    assert_eq!(select["postgres"]["tags"][0].as_str(), Some("SELECT 3"));
    assert_eq!(select["postgres"]["rows"].as_u64(), Some(3));
    for exchange in [
        find("CREATE TABLE pets"),
        find("INSERT INTO pets"),
        failed,
        select,
    ] {
        assert!(
            exchange["latency_ns"].as_u64().is_some_and(|ns| ns > 0),
            "{exchange}"
        );
    }
    let errors = exchanges(&conversations(
        &segment,
        &["--proto", "postgres", "--errors"],
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let text = recorder(&[
        "conversations",
        "--proto",
        "postgres",
        segment.to_str().unwrap(),
    ]);
    assert!(text.contains("→ ERROR 42P01"), "{text}");
    assert!(!text.contains(password), "the password never shows");
}

#[test]
fn redis_commands_show_their_replies_and_errors() {
    if !require_privileges() {
        return;
    }
    let port = free_port().to_string();
    let mut server = start_server(
        Command::new("redis-server").args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        "Ready to accept connections",
    );
    let work = tempfile::tempdir().unwrap();
    let script =
        format!("printf 'SET color blue\\nGET color\\nINCR color\\n' | redis-cli -p {port} >&2");
    let segment = record(&work.path().join("rec"), &[], &["sh", "-c", &script], &[]);
    let _ = server.kill();
    let _ = server.wait();
    let all = exchanges(&conversations(&segment, &["--proto", "redis"]));
    let command = |words: &[&str]| {
        all.iter()
            .find(|e| e["redis"]["command"] == serde_json::json!(words))
            .unwrap_or_else(|| panic!("no {words:?}: {all:#?}"))
            .clone()
    };
    let set = command(&["SET", "color", "blue"]);
    assert_eq!(
        (
            set["redis"]["reply_type"].as_str(),
            set["redis"]["reply"].as_str()
        ),
        (Some("simple-string"), Some("OK"))
    );
    let get = command(&["GET", "color"]);
    assert_eq!(
        (
            get["redis"]["reply_type"].as_str(),
            get["redis"]["reply"].as_str()
        ),
        (Some("bulk-string"), Some("\"blue\""))
    );
    let incr = command(&["INCR", "color"]);
    assert_eq!(incr["redis"]["reply_type"].as_str(), Some("error"));
    assert!(
        incr["redis"]["error"]
            .as_str()
            .unwrap()
            .contains("not an integer"),
        "{incr}"
    );
    assert_eq!(exchanges(&conversations(&segment, &["--errors"])).len(), 1);
}

#[test]
fn dns_lookups_show_names_types_and_answers() {
    if !require_privileges() {
        return;
    }
    let port = free_port().to_string();
    let mut server = start_server(
        Command::new("dnsmasq").args([
            "-d",
            "--port",
            &port,
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--address=/svc.test/10.9.8.7",
            "--address=/gone.test/",
        ]),
        "started",
    );
    let work = tempfile::tempdir().unwrap();
    let dig = |name: &str| format!("dig @127.0.0.1 -p {port} +tries=1 +time=5 {name} A >&2");
    let script = format!("{} && {}", dig("svc.test"), dig("gone.test"));
    let segment = record(&work.path().join("rec"), &[], &["sh", "-c", &script], &[]);
    let _ = server.kill();
    let _ = server.wait();
    let all = exchanges(&conversations(&segment, &["--proto", "dns"]));
    let found = |name: &str| {
        all.iter()
            .find(|e| {
                e["dns"]["name"]
                    .as_str()
                    .is_some_and(|n| n.trim_end_matches('.') == name)
            })
            .unwrap_or_else(|| panic!("no lookup of {name}: {all:#?}"))
            .clone()
    };
    let svc = found("svc.test");
    assert_eq!(svc["dns"]["type"].as_str(), Some("A"));
    assert_eq!(svc["dns"]["rcode"].as_str(), Some("NOERROR"));
    assert_eq!(svc["dns"]["answers"], serde_json::json!(["A 10.9.8.7"]));
    let gone = found("gone.test");
    assert_eq!(gone["dns"]["rcode"].as_str(), Some("NXDOMAIN"));
    assert_eq!(gone["error"], Value::Bool(true));

    let pcapng = work.path().join("rec.pcapng");
    export(&segment, "pcapng", &pcapng);
    let decode = format!("udp.port=={port},dns");
    let names = tshark(
        &pcapng,
        &[
            "-d",
            &decode,
            "-Y",
            "dns.flags.response == 1",
            "-T",
            "fields",
            "-e",
            "dns.qry.name",
        ],
    );
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["svc.test", "gone.test"],
        "tshark reads the answers"
    );
}
