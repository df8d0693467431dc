//! CLUSTER (this node's membership in a failover cluster) and SENTINEL (the subset Sentinel-aware
//! clients use to find the primary), answered from the quorum's committed state.

use std::fmt::Write as _;

use bytes::Bytes;
use synap_core::Reply;

use crate::cluster::{Cluster, NodeId, split_addr};
use crate::service::Service;

const DISABLED: &str = "ERR This instance has cluster support disabled";

fn bulk(s: impl Into<Bytes>) -> Reply {
    Reply::Bulk(s.into())
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

/// A CLUSTER subcommand that changes membership (run after the batch's replies are out: it waits for
/// the quorum).
pub fn is_membership_change(args: &[Bytes]) -> bool {
    args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"addnode") || a.eq_ignore_ascii_case(b"removenode"))
}

fn node_id(b: &[u8]) -> Result<NodeId, String> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<NodeId>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| "ERR node id must be a positive integer".to_string())
}

/// CLUSTER ADDNODE id host:port | REMOVENODE id.
pub async fn membership_change(svc: &Service, args: &[Bytes]) -> Result<Reply, String> {
    let cluster = svc.cluster.get().ok_or(DISABLED)?;
    match (lower(&args[0]).as_str(), args.len()) {
        ("addnode", 3) => {
            let id = node_id(&args[1])?;
            let addr = std::str::from_utf8(&args[2]).ok().filter(|a| split_addr(a).is_some());
            let addr = addr.ok_or("ERR expected the node's cluster address as host:port")?;
            cluster.add_node(id, addr).await?;
            Ok(Reply::Ok)
        }
        ("removenode", 2) => {
            cluster.remove_node(node_id(&args[1])?).await?;
            Ok(Reply::Ok)
        }
        (sub, _) => Err(format!("ERR wrong number of arguments for 'cluster|{sub}' command")),
    }
}

/// CLUSTER INFO | MYID | HELP (the membership changes are [`membership_change`]).
pub fn cluster(svc: &Service, args: &[Bytes]) -> Result<Reply, String> {
    let sub = lower(&args[0]);
    if sub == "help" {
        let lines = [
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "INFO",
            "    The cluster's epoch, primary, in-sync replicas, quorum leader and members.",
            "MYID",
            "    This node's id.",
            "ADDNODE <node-id> <host:port>",
            "    Adds the node whose cluster port is at host:port (on the quorum's leader).",
            "REMOVENODE <node-id>",
            "    Removes a node (not the primary).",
        ];
        return Ok(Reply::Array(lines.iter().map(|l| Reply::Status(l)).collect()));
    }
    let cluster = svc.cluster.get().ok_or(DISABLED)?;
    match (sub.as_str(), args.len()) {
        ("info", 1) => Ok(bulk(info_text(cluster))),
        ("myid", 1) => Ok(bulk(cluster.id.to_string())),
        ("info" | "myid", _) => Err(format!("ERR wrong number of arguments for 'cluster|{sub}' command")),
        _ => Err(format!("ERR unknown subcommand '{}'. Try CLUSTER HELP.", String::from_utf8_lossy(&args[0]))),
    }
}

fn info_text(cluster: &Cluster) -> String {
    let st = cluster.status();
    let mut s = String::new();
    let isr: Vec<String> = st.isr.iter().map(|n| n.to_string()).collect();
    let _ = write!(
        s,
        "cluster_enabled:1\r\ncluster_state:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\ncluster_known_nodes:{}\r\ncluster_size:1\r\ncluster_node_id:{}\r\ncluster_primary:{}\r\ncluster_isr:{}\r\ncluster_leader:{}\r\ncluster_term:{}\r\ncluster_raft_state:{}\r\ncluster_writable:{}\r\ncluster_lease_ms_left:{}\r\ncluster_failovers:{}\r\n",
        if st.primary.is_some() { "ok" } else { "fail" },
        st.epoch,
        cluster_epoch_of(cluster),
        st.members.len(),
        st.node_id,
        st.primary.map(|p| p.to_string()).unwrap_or_default(),
        isr.join(","),
        st.leader.map(|p| p.to_string()).unwrap_or_default(),
        st.term,
        st.raft_state,
        u8::from(st.writable),
        st.lease_ms_left,
        st.failovers,
    );
    s
}

fn cluster_epoch_of(cluster: &Cluster) -> u64 {
    cluster.acting_epoch()
}

/// INFO's cluster section (Redis has one; `cluster_enabled:0` without a cluster).
pub fn info_section(svc: &Service, s: &mut String) {
    s.push_str("# Cluster\r\n");
    match svc.cluster.get() {
        None => s.push_str("cluster_enabled:0\r\n"),
        Some(c) => s.push_str(&info_text(c)),
    }
    s.push_str("\r\n");
}

/// A Sentinel state entry: flat pairs (RESP2 shows an array, RESP3 a map).
fn state(pairs: Vec<(&str, String)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (bulk(k.to_string()), bulk(v))).collect())
}

/// The head every Sentinel state entry starts with (as Sentinel's, in its order): who, where, and the
/// link fields (Synap's nodes learn each other's state from the quorum, not by pings: zeros).
fn entry_head(
    name: String,
    ip: String,
    port: u16,
    runid: String,
    flags: &str,
    down_ms: u64,
) -> Vec<(&'static str, String)> {
    vec![
        ("name", name),
        ("ip", ip),
        ("port", port.to_string()),
        ("runid", runid),
        ("flags", flags.to_string()),
        ("link-pending-commands", "0".into()),
        ("link-refcount", "1".into()),
        ("last-ping-sent", "0".into()),
        ("last-ok-ping-reply", "0".into()),
        ("last-ping-reply", "0".into()),
        ("down-after-milliseconds", down_ms.to_string()),
    ]
}

fn master_state(svc: &Service, cluster: &Cluster) -> Option<Reply> {
    let st = cluster.status();
    let primary = st.primary?;
    let info = st.members.get(&primary)?;
    let (ip, port) = split_addr(&info.resp)?;
    let replicas = st.members.keys().filter(|n| **n != primary).count();
    let voters = st.members.len() - st.learners.len();
    let lease = svc.config.cluster.lease_ms;
    let mut fields = entry_head(cluster.name.clone(), ip, port, format!("node-{primary}"), "master", lease);
    fields.extend([
        ("info-refresh", "0".into()),
        ("role-reported", "master".into()),
        ("role-reported-time", "0".into()),
        ("config-epoch", st.epoch.to_string()),
        ("num-slaves", replicas.to_string()),
        ("num-other-sentinels", voters.saturating_sub(1).to_string()),
        ("quorum", (voters / 2 + 1).to_string()),
        ("failover-timeout", (lease * 4).to_string()),
        ("parallel-syncs", "1".into()),
    ]);
    Some(state(fields))
}

/// SENTINEL GET-MASTER-ADDR-BY-NAME | MASTERS | MASTER | REPLICAS (SLAVES) | SENTINELS | MYID.
pub fn sentinel(svc: &Service, args: &[Bytes]) -> Result<Reply, String> {
    let cluster = svc.cluster.get().ok_or("ERR SENTINEL needs cluster.enabled (this node is not in a cluster)")?;
    let sub = lower(&args[0]);
    let named = |want: usize| -> Result<bool, String> {
        if args.len() != want {
            return Err(format!("ERR wrong number of arguments for 'sentinel|{sub}' command"));
        }
        Ok(want < 2 || args[1].as_ref() == cluster.name.as_bytes())
    };
    let no_such = || "ERR No such master with that name".to_string();
    let lease = svc.config.cluster.lease_ms;
    match sub.as_str() {
        "get-master-addr-by-name" => {
            if !named(2)? {
                return Ok(Reply::NullArray);
            }
            Ok(match cluster.primary_addr() {
                Some((ip, port)) => Reply::Array(vec![bulk(ip), bulk(port.to_string())]),
                None => Reply::NullArray,
            })
        }
        "masters" => {
            named(1)?;
            Ok(Reply::Array(master_state(svc, cluster).into_iter().collect()))
        }
        "master" => {
            if !named(2)? {
                return Err(no_such());
            }
            master_state(svc, cluster).ok_or_else(no_such)
        }
        "replicas" | "slaves" => {
            if !named(2)? {
                return Err(no_such());
            }
            let st = cluster.status();
            let Some(primary) = st.primary else { return Err(no_such()) };
            let pinfo = st.members.get(&primary).and_then(|i| split_addr(&i.resp));
            let (mip, mport) = pinfo.unwrap_or_default();
            let list = st
                .members
                .iter()
                .filter(|(id, _)| **id != primary)
                .filter_map(|(id, info)| {
                    let (ip, port) = split_addr(&info.resp)?;
                    let in_sync = st.isr.contains(id);
                    let flags = if in_sync { "slave" } else { "slave,disconnected" };
                    let mut fields = entry_head(format!("{ip}:{port}"), ip, port, format!("node-{id}"), flags, lease);
                    fields.extend([
                        ("info-refresh", "0".into()),
                        ("role-reported", "slave".into()),
                        ("role-reported-time", "0".into()),
                        ("master-link-down-time", "0".into()),
                        ("master-link-status", if in_sync { "ok".into() } else { "err".to_string() }),
                        ("master-host", mip.clone()),
                        ("master-port", mport.to_string()),
                        ("slave-priority", "100".into()),
                        ("slave-repl-offset", "0".into()),
                        ("replica-announced", "1".into()),
                    ]);
                    Some(state(fields))
                })
                .collect();
            Ok(Reply::Array(list))
        }
        "sentinels" => {
            if !named(2)? {
                return Err(no_such());
            }
            let st = cluster.status();
            let list = st
                .members
                .iter()
                .filter(|(id, _)| **id != cluster.id)
                .filter_map(|(id, info)| {
                    let (ip, port) = split_addr(&info.resp)?;
                    let mut fields =
                        entry_head(format!("node-{id}"), ip, port, format!("node-{id}"), "sentinel", lease);
                    fields.extend([
                        ("last-hello-message", "0".into()),
                        ("voted-leader", "?".into()),
                        ("voted-leader-epoch", "0".into()),
                    ]);
                    Some(state(fields))
                })
                .collect();
            Ok(Reply::Array(list))
        }
        "myid" => {
            named(1)?;
            Ok(bulk(format!("node-{}", cluster.id)))
        }
        _ => Err(format!("ERR unknown subcommand '{}'. Try SENTINEL HELP.", String::from_utf8_lossy(&args[0]))),
    }
}
