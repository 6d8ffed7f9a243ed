//! Answering DNS CERT queries for our own domains (RFC 4398), authoritatively, over UDP and
//! TCP (`[dns] listen`): each local domain's certificate at every name it is bound to. A
//! small deployment needs no zone edits; a large one publishes `hisp dns records` in its
//! own DNS instead. Names under our domains that hold nothing get NXDOMAIN or "no data";
//! names outside them are refused. An answer larger than the client's UDP size (512, or
//! its EDNS size) comes back truncated so the client asks again over TCP.

use crate::directory::Directory;
use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::NULL;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hisp_discovery::publish::{cert_record, owners};
use hisp_discovery::record::domain_owner;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

const CERT: RecordType = RecordType::Unknown(37);

/// The zone in force, replaced when a reload reads renewed certificates.
pub type ZoneSlot = hisp_smtp::Swap<Zone>;

/// The names we answer for and their CERT RDATA.
#[derive(Debug, Default)]
pub struct Zone {
    apexes: Vec<Name>,
    records: HashMap<Name, Vec<Vec<u8>>>,
    ttl: u32,
}

impl Zone {
    /// Every local domain's certificate, at every name it is bound to.
    pub fn from_directory(dir: &Directory, ttl: u32) -> Zone {
        let mut z = Zone {
            ttl,
            ..Zone::default()
        };
        for d in &dir.domains {
            if let Ok(apex) = domain_owner(&d.name) {
                z.apexes.push(apex.to_lowercase());
            }
            let cert = d.cred.cert();
            let rdata = cert_record(cert).to_rdata();
            for owner in owners(cert).into_iter().flatten() {
                z.records.entry(owner).or_default().push(rdata.clone());
            }
        }
        z
    }

    fn ours(&self, name: &Name) -> bool {
        self.apexes.iter().any(|a| a.zone_of(name))
    }
}

/// The response to one query message, or `None` for something that is not a query.
pub fn answer(zone: &Zone, query: &[u8], udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    if q.message_type() != MessageType::Query || q.op_code() != OpCode::Query {
        return None;
    }
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(q.recursion_desired());
    if q.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        r.set_edns(edns);
    }
    let Some(question) = q.queries().first() else {
        r.set_response_code(ResponseCode::FormErr);
        return r.to_vec().ok();
    };
    r.add_query(question.clone());
    let name = question.name().to_lowercase();
    if !zone.ours(&name) {
        r.set_response_code(ResponseCode::Refused);
        return r.to_vec().ok();
    }
    r.set_authoritative(true);
    let found = zone.records.get(&name);
    let exists = found.is_some() || zone.apexes.contains(&name);
    let wants = matches!(question.query_type(), CERT | RecordType::ANY);
    match found.filter(|_| wants) {
        Some(rdatas) => {
            for rd in rdatas {
                let data = RData::Unknown {
                    code: CERT,
                    rdata: NULL::with(rd.clone()),
                };
                r.add_answer(Record::from_rdata(question.name().clone(), zone.ttl, data));
            }
        }
        None if !exists => {
            r.set_response_code(ResponseCode::NXDomain);
        }
        None => {}
    }
    let bytes = r.to_vec().ok()?;
    if udp && bytes.len() > usize::from(q.max_payload()) {
        r.take_answers();
        r.set_truncated(true);
        return r.to_vec().ok();
    }
    Some(bytes)
}

/// Serve UDP queries until `stop` flips.
pub async fn serve_udp(sock: UdpSocket, zone: Arc<ZoneSlot>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                if let Some(resp) = answer(&zone.current(), buf.get(..n).unwrap_or_default(), true) {
                    let _ = sock.send_to(&resp, peer).await;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Serve TCP queries (RFC 7766: two-octet length, several per connection) until `stop`.
pub async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<ZoneSlot>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((mut s, _)) = r else { continue };
                let zone = zone.clone();
                tokio::spawn(async move {
                    let idle = std::time::Duration::from_secs(10);
                    loop {
                        let mut len = [0u8; 2];
                        match tokio::time::timeout(idle, s.read_exact(&mut len)).await {
                            Ok(Ok(_)) => {}
                            _ => return,
                        }
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if !matches!(tokio::time::timeout(idle, s.read_exact(&mut q)).await, Ok(Ok(_))) {
                            return;
                        }
                        let Some(resp) = answer(&zone.current(), &q, false) else { return };
                        let Ok(n) = u16::try_from(resp.len()) else { return };
                        if s.write_all(&n.to_be_bytes()).await.is_err() || s.write_all(&resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
            _ = stop.changed() => return,
        }
    }
}
