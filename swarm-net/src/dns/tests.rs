use super::*;
use crate::testview::{ip, view};

fn nets(ids: &[&str]) -> Vec<Id> {
    ids.iter().map(|s| Id::from(*s)).collect()
}

#[test]
fn names_resolve_to_vips_tasks_and_only_on_shared_networks() {
    let t = NameTable::of(&view());
    let app = nets(&["app"]);
    assert_eq!(t.lookup(&app, "web"), Lookup::Found(vec![ip("10.0.1.2")]));
    assert_eq!(
        t.lookup(&app, "www"),
        Lookup::Found(vec![ip("10.0.1.2")]),
        "an alias"
    );
    assert_eq!(
        t.lookup(&app, "tasks.web"),
        Lookup::Found(vec![ip("10.0.1.3"), ip("10.0.1.4")]),
        "serving tasks only: w3 is draining"
    );
    assert_eq!(
        t.lookup(&app, "db"),
        Lookup::Found(vec![ip("10.0.1.10"), ip("10.0.1.11")]),
        "dnsrr: the tasks themselves"
    );
    // A task on othernet sees neither web nor db.
    let oth = nets(&["oth"]);
    assert_eq!(t.lookup(&oth, "web"), Lookup::NoSuchName);
    assert_eq!(t.lookup(&oth, "tasks.db"), Lookup::NoSuchName);
    assert_eq!(t.lookup(&oth, "other"), Lookup::Found(vec![ip("10.0.2.2")]));
    assert_eq!(t.lookup(&app, "example.org"), Lookup::NotOurs);
    // The ingress network carries no names.
    assert_eq!(
        t.lookup(&nets(&["app", "ing"]), "web"),
        Lookup::Found(vec![ip("10.0.1.2")])
    );
    assert_eq!(t.lookup(&nets(&["ing"]), "web"), Lookup::NoSuchName);
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    let mut m = Message::query();
    m.metadata.id = 7;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

#[tokio::test]
async fn answers_carry_the_ttl_and_nxdomain_and_upstream_failures_say_so() {
    let names = Names::default();
    names.set(Arc::new(NameTable::of(&view())));
    // An upstream that never answers: a bound socket that reads nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = Answerer::new(
        names,
        Duration::from_secs(2),
        vec![silent.local_addr().unwrap()],
    );
    let app = nets(&["app"]);
    let reply =
        Message::from_vec(&a.answer(&app, &query("web.", RecordType::A)).await.unwrap()).unwrap();
    assert_eq!(reply.metadata.id, 7);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].ttl, 2);
    let reply = Message::from_vec(
        &a.answer(&app, &query("nosuch.", RecordType::A))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    let reply = Message::from_vec(
        &a.answer(&app, &query("web.", RecordType::AAAA))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (reply.metadata.response_code, reply.answers.len()),
        (ResponseCode::NoError, 0)
    );
    let reply = Message::from_vec(
        &a.answer(&app, &query("example.org.", RecordType::A))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn other_names_are_forwarded_upstream() {
    // A fake upstream that answers every query with 192.0.2.7.
    let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 512];
        let (n, from) = up.recv_from(&mut buf).await.unwrap();
        let q = Message::from_vec(&buf[..n]).unwrap();
        let mut r = Message::response(q.metadata.id, q.metadata.op_code);
        let question = q.queries[0].clone();
        r.add_answer(Record::from_rdata(
            question.name().clone(),
            300,
            RData::A(A(ip("192.0.2.7"))),
        ));
        r.add_query(question);
        up.send_to(&r.to_vec().unwrap(), from).await.unwrap();
    });
    let a = Answerer::new(Names::default(), Duration::from_secs(2), vec![up_addr]);
    let reply = a
        .answer(&nets(&["app"]), &query("example.org.", RecordType::A))
        .await
        .unwrap();
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].ttl, 300, "the upstream's answer, as it is");
}

#[test]
fn upstreams_come_from_resolv_conf() {
    let conf = "# comment\nnameserver 192.0.2.53\nsearch example.org\nnameserver ::1\n";
    assert_eq!(
        upstreams_of(conf),
        vec![
            "192.0.2.53:53".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
}
