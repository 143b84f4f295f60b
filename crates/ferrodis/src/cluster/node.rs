//! The cluster as this node knows it (Redis's clusterState and clusterNode), as data: the nodes,
//! the slot map, epochs, the election and manual-failover state; `nodes.conf` in Redis's format
//! (read at start, written atomically after every change); CLUSTER NODES lines.

use super::bus::{self, Bitmap, Name, NULL_NAME, SLOTS};
use std::collections::HashMap;
use std::fmt::Write as _;

/// An outbound link's handle: its id, when it was created, and the queue its task writes from.
pub struct LinkHandle {
    pub id: u64,
    pub ctime: i64,
    pub tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// The link's task connected and sent its first message.
    pub connected: bool,
}

pub struct Node {
    pub name: Name,
    /// Routing index + 1 (`state::cluster::Routing`), stable for the process's life.
    pub idx: u32,
    pub flags: u16,
    pub config_epoch: u64,
    pub slots: Bitmap,
    pub numslots: usize,
    pub slaveof: Option<Name>,
    pub ctime: i64,
    pub ping_sent: i64,
    pub pong_received: i64,
    pub data_received: i64,
    pub fail_time: i64,
    pub voted_time: i64,
    pub repl_offset: u64,
    pub repl_offset_time: i64,
    /// Since when this master has slots but no working replica (0: it has one).
    pub orphaned_time: i64,
    pub ip: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    /// (reporting master, when) of nodes that gossiped this one as failing.
    pub fail_reports: Vec<(Name, i64)>,
    pub link: Option<LinkHandle>,
    /// Inbound links from this node: (link id, created), for CLUSTER LINKS.
    pub inbound: Option<(u64, i64)>,
    pub shard_id: Name,
}

impl Node {
    pub fn new(name: Name, idx: u32, flags: u16, now: i64) -> Node {
        Node {
            name,
            idx,
            flags,
            config_epoch: 0,
            slots: Bitmap::default(),
            numslots: 0,
            slaveof: None,
            ctime: now,
            ping_sent: 0,
            pong_received: 0,
            data_received: 0,
            fail_time: 0,
            voted_time: 0,
            repl_offset: 0,
            repl_offset_time: 0,
            orphaned_time: 0,
            ip: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            hostname: String::new(),
            fail_reports: Vec::new(),
            link: None,
            inbound: None,
            shard_id: random_name(),
        }
    }
    pub fn is_master(&self) -> bool {
        self.flags & bus::F_MASTER != 0
    }
    /// The port a client is told: the plaintext one for a plaintext client where the node has
    /// one (tls-cluster), else the node's port.
    pub fn client_port(&self, plain: bool) -> u16 {
        match plain && self.pport != 0 {
            true => self.pport,
            false => self.port,
        }
    }
    pub fn is_replica(&self) -> bool {
        self.flags & bus::F_SLAVE != 0
    }
    pub fn failed(&self) -> bool {
        self.flags & bus::F_FAIL != 0
    }
    pub fn timed_out(&self) -> bool {
        self.flags & bus::F_PFAIL != 0
    }
    pub fn in_handshake(&self) -> bool {
        self.flags & bus::F_HANDSHAKE != 0
    }
    pub fn has_addr(&self) -> bool {
        self.flags & bus::F_NOADDR == 0
    }
    pub fn name_str(&self) -> &str {
        std::str::from_utf8(&self.name).unwrap_or("")
    }
}

pub fn random_name() -> Name {
    let s = crate::util::random_hex40();
    let mut n = NULL_NAME;
    n.copy_from_slice(&s.as_bytes()[..bus::NAMELEN]);
    n
}

pub fn name_str(n: &Name) -> &str {
    std::str::from_utf8(n).unwrap_or("")
}

/// Parses a node name given by a user or a file (40 hex characters, Redis's verifyClusterNodeId).
pub fn parse_name(s: &[u8]) -> Option<Name> {
    if s.len() != bus::NAMELEN || !s.iter().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    s.try_into().ok()
}

/// Redis's representClusterNodeFlags order.
pub fn flags_str(flags: u16) -> String {
    let mut v = Vec::new();
    for (f, s) in [
        (bus::F_MYSELF, "myself"),
        (bus::F_MASTER, "master"),
        (bus::F_SLAVE, "slave"),
        (bus::F_PFAIL, "fail?"),
        (bus::F_FAIL, "fail"),
        (bus::F_HANDSHAKE, "handshake"),
        (bus::F_NOADDR, "noaddr"),
        (bus::F_NOFAILOVER, "nofailover"),
    ] {
        if flags & f != 0 {
            v.push(s);
        }
    }
    if v.is_empty() {
        "noflags".into()
    } else {
        v.join(",")
    }
}

/// Why a replica cannot fail over (logged when it changes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CantFailover {
    None,
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

pub struct ClusterState {
    pub myself: Name,
    pub nodes: HashMap<Name, Node>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub state_ok: bool,
    pub size: usize,
    pub slots: Vec<Option<Name>>,
    pub migrating: Vec<Option<Name>>,
    pub importing: Vec<Option<Name>>,
    /// Nodes forgotten recently (CLUSTER FORGET), not re-added from gossip until the time.
    pub blacklist: HashMap<Name, i64>,
    pub failover_auth_time: i64,
    pub failover_auth_count: usize,
    pub failover_auth_sent: bool,
    pub failover_auth_rank: usize,
    pub failover_auth_epoch: u64,
    pub cant_failover: CantFailover,
    pub mf_end: i64,
    pub mf_slave: Option<Name>,
    pub mf_master_offset: i64,
    pub mf_can_start: bool,
    pub stats_sent: [u64; bus::TYPE_COUNT],
    pub stats_received: [u64; bus::TYPE_COUNT],
    pub next_idx: u32,
    pub among_minority_time: i64,
    pub start_time: i64,
    /// The configuration changed: nodes.conf is written before the next reply or tick ends.
    pub todo_save: bool,
    pub todo_update_state: bool,
}

impl ClusterState {
    pub fn new(now: i64) -> ClusterState {
        let myself = random_name();
        let mut s = ClusterState {
            myself,
            nodes: HashMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            state_ok: false,
            size: 0,
            slots: vec![None; SLOTS],
            migrating: vec![None; SLOTS],
            importing: vec![None; SLOTS],
            blacklist: HashMap::new(),
            failover_auth_time: 0,
            failover_auth_count: 0,
            failover_auth_sent: false,
            failover_auth_rank: 0,
            failover_auth_epoch: 0,
            cant_failover: CantFailover::None,
            mf_end: 0,
            mf_slave: None,
            mf_master_offset: -1,
            mf_can_start: false,
            stats_sent: [0; bus::TYPE_COUNT],
            stats_received: [0; bus::TYPE_COUNT],
            next_idx: 1,
            among_minority_time: 0,
            start_time: now,
            todo_save: true,
            todo_update_state: true,
        };
        s.add_node(myself, bus::F_MYSELF | bus::F_MASTER, now);
        s
    }

    pub fn add_node(&mut self, name: Name, flags: u16, now: i64) -> &mut Node {
        let idx = self.next_idx;
        self.next_idx += 1;
        self.nodes.entry(name).or_insert_with(|| Node::new(name, idx, flags, now))
    }

    pub fn me(&self) -> &Node {
        &self.nodes[&self.myself]
    }
    pub fn me_mut(&mut self) -> &mut Node {
        self.nodes.get_mut(&self.myself).expect("myself is always known")
    }

    /// The node a user names: a full 40-character id.
    pub fn lookup(&self, s: &[u8]) -> Option<Name> {
        let n = parse_name(s)?;
        self.nodes.contains_key(&n).then_some(n)
    }

    pub fn add_slot(&mut self, owner: Name, slot: usize) -> bool {
        if self.slots[slot].is_some() {
            return false;
        }
        if let Some(n) = self.nodes.get_mut(&owner) {
            if !n.slots.get(slot) {
                n.slots.set(slot, true);
                n.numslots += 1;
            }
        }
        self.slots[slot] = Some(owner);
        true
    }

    pub fn del_slot(&mut self, slot: usize) -> bool {
        let Some(owner) = self.slots[slot].take() else { return false };
        if let Some(n) = self.nodes.get_mut(&owner) {
            if n.slots.get(slot) {
                n.slots.set(slot, false);
                n.numslots -= 1;
            }
        }
        true
    }

    /// Removes every slot of a node (Redis's clusterDelNodeSlots); returns how many.
    pub fn del_node_slots(&mut self, name: &Name) -> usize {
        let mut n = 0;
        for j in 0..SLOTS {
            if self.slots[j] == Some(*name) {
                self.del_slot(j);
                n += 1;
            }
        }
        n
    }

    /// The replicas of a master, by name.
    pub fn replicas_of(&self, master: &Name) -> Vec<Name> {
        let mut v: Vec<Name> = self.nodes.values().filter(|n| n.slaveof == Some(*master) && n.is_replica()).map(|n| n.name).collect();
        v.sort();
        v
    }

    /// Deletes a node (FORGET, a timed-out handshake, a node renamed): its slots, its failure
    /// reports about others.
    pub fn del_node(&mut self, name: &Name) {
        for j in 0..SLOTS {
            if self.importing[j] == Some(*name) {
                self.importing[j] = None;
            }
            if self.migrating[j] == Some(*name) {
                self.migrating[j] = None;
            }
            if self.slots[j] == Some(*name) {
                self.del_slot(j);
            }
        }
        for n in self.nodes.values_mut() {
            n.fail_reports.retain(|(r, _)| r != name);
        }
        self.nodes.remove(name);
    }

    /// Masters serving at least one slot (Redis's cluster size).
    pub fn masters_with_slots(&self) -> usize {
        self.nodes.values().filter(|n| n.is_master() && n.numslots > 0).count()
    }

    /// One line of CLUSTER NODES / nodes.conf (Redis's clusterGenNodeDescription).
    /// `plain`: for a plaintext client of a tls-cluster node, which is told plaintext ports.
    pub fn describe(&self, n: &Node, now_link_states: bool, plain: bool) -> String {
        let mut s = String::with_capacity(128);
        let _ = write!(s, "{} {}:{}@{}", n.name_str(), n.ip, n.client_port(plain), n.cport);
        if !n.hostname.is_empty() {
            let _ = write!(s, ",{}", n.hostname);
        }
        let _ = write!(s, " {} ", flags_str(n.flags));
        match n.slaveof {
            Some(m) => s.push_str(name_str(&m)),
            None => s.push('-'),
        }
        let myself = n.name == self.myself;
        let connected = myself || n.link.as_ref().is_some_and(|l| l.connected) || !now_link_states;
        let _ =
            write!(s, " {} {} {} {}", n.ping_sent, n.pong_received, n.config_epoch, if connected { "connected" } else { "disconnected" });
        // Slots as ranges (replicas list none: their master's slots are the master's).
        if n.is_master() {
            for (start, end) in n.slots.ranges() {
                if start == end {
                    let _ = write!(s, " {}", start);
                } else {
                    let _ = write!(s, " {}-{}", start, end);
                }
            }
        }
        if myself {
            for j in 0..SLOTS {
                if let Some(t) = self.migrating[j] {
                    let _ = write!(s, " [{}->-{}]", j, name_str(&t));
                } else if let Some(f) = self.importing[j] {
                    let _ = write!(s, " [{}-<-{}]", j, name_str(&f));
                }
            }
        }
        s
    }

    /// CLUSTER NODES (myself first, then the others by name).
    pub fn nodes_text(&self, plain: bool) -> String {
        let mut names: Vec<&Name> = self.nodes.keys().collect();
        names.sort_by_key(|n| (**n != self.myself, **n));
        let mut s = String::new();
        for n in names {
            let node = &self.nodes[n];
            s.push_str(&self.describe(node, true, plain));
            s.push('\n');
        }
        s
    }

    /// The text of nodes.conf.
    pub fn config_text(&self) -> String {
        let mut names: Vec<&Name> = self.nodes.keys().filter(|n| !self.nodes[*n].in_handshake()).collect();
        names.sort_by_key(|n| (**n != self.myself, **n));
        let mut s = String::new();
        for n in names {
            s.push_str(&self.describe(&self.nodes[n], false, false));
            s.push('\n');
        }
        let _ = writeln!(s, "vars currentEpoch {} lastVoteEpoch {}", self.current_epoch, self.last_vote_epoch);
        s
    }

    /// Loads nodes.conf (Redis's clusterLoadConfig). Err: the message to stop the start with.
    pub fn load(text: &str, now: i64) -> Result<ClusterState, String> {
        let mut s = ClusterState::new(now);
        let placeholder = s.myself;
        s.nodes.clear();
        s.next_idx = 1;
        let mut myself = None;
        let mut masters: Vec<(Name, Name)> = Vec::new();
        for line in text.lines() {
            let argv: Vec<&str> = line.split_whitespace().collect();
            if argv.is_empty() {
                continue;
            }
            if argv[0] == "vars" {
                let mut i = 1;
                while i + 1 < argv.len() {
                    let v: u64 = argv[i + 1].parse().map_err(|_| "Unrecoverable error: corrupted cluster config file.".to_string())?;
                    match argv[i] {
                        "currentEpoch" => s.current_epoch = v,
                        "lastVoteEpoch" => s.last_vote_epoch = v,
                        _ => {}
                    }
                    i += 2;
                }
                continue;
            }
            if argv.len() < 8 {
                return Err("Unrecoverable error: corrupted cluster config file.".into());
            }
            let name = parse_name(argv[0].as_bytes()).ok_or("Unrecoverable error: corrupted cluster config file.")?;
            let (addr, hostname) = match argv[1].split_once(',') {
                Some((a, h)) => (a, h.to_string()),
                None => (argv[1], String::new()),
            };
            let (hostport, cport) = addr.split_once('@').unwrap_or((addr, ""));
            let (ip, port) = hostport.rsplit_once(':').ok_or("Unrecoverable error: corrupted cluster config file.")?;
            let mut flags = 0u16;
            for f in argv[2].split(',') {
                flags |= match f {
                    "myself" => bus::F_MYSELF,
                    "master" => bus::F_MASTER,
                    "slave" => bus::F_SLAVE,
                    "fail?" => bus::F_PFAIL,
                    "fail" => bus::F_FAIL,
                    "handshake" => bus::F_HANDSHAKE,
                    "noaddr" => bus::F_NOADDR,
                    "nofailover" => bus::F_NOFAILOVER,
                    "noflags" => 0,
                    _ => return Err("Unknown flag in redis cluster config file".into()),
                };
            }
            let idx = s.next_idx;
            s.next_idx += 1;
            let mut n = Node::new(name, idx, flags, now);
            n.ip = ip.to_string();
            n.port = port.parse().unwrap_or(0);
            n.cport = cport.parse().unwrap_or(0);
            n.hostname = hostname;
            n.config_epoch = argv[6].parse().unwrap_or(0);
            if flags & bus::F_FAIL != 0 {
                n.fail_time = now;
            }
            if flags & bus::F_MYSELF != 0 {
                myself = Some(name);
            }
            if argv[3] != "-" {
                if let Some(m) = parse_name(argv[3].as_bytes()) {
                    masters.push((name, m));
                    n.slaveof = Some(m);
                }
            }
            s.nodes.insert(name, n);
            for r in &argv[8..] {
                if r.starts_with('[') {
                    // [slot->-node] migrating, [slot-<-node] importing.
                    let inner = r.trim_start_matches('[').trim_end_matches(']');
                    if let Some((slot, target)) = inner.split_once("->-") {
                        if let (Ok(j), Some(t)) = (slot.parse::<usize>(), parse_name(target.as_bytes())) {
                            if j < SLOTS {
                                s.migrating[j] = Some(t);
                            }
                        }
                    } else if let Some((slot, from)) = inner.split_once("-<-") {
                        if let (Ok(j), Some(f)) = (slot.parse::<usize>(), parse_name(from.as_bytes())) {
                            if j < SLOTS {
                                s.importing[j] = Some(f);
                            }
                        }
                    }
                    continue;
                }
                let (a, b) = match r.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                    None => (r.parse::<usize>(), r.parse::<usize>()),
                };
                let (Ok(a), Ok(b)) = (a, b) else {
                    return Err("Unrecoverable error: corrupted cluster config file.".into());
                };
                for j in a..=b.min(SLOTS - 1) {
                    s.slots[j] = None;
                    s.add_slot(name, j);
                }
            }
        }
        // Masters named by replicas but not listed get an entry without an address.
        for (_, m) in masters {
            if !s.nodes.contains_key(&m) {
                let idx = s.next_idx;
                s.next_idx += 1;
                s.nodes.insert(m, Node::new(m, idx, bus::F_MASTER | bus::F_NOADDR, now));
            }
        }
        match myself {
            Some(m) => s.myself = m,
            None if s.nodes.is_empty() => {
                s.myself = placeholder;
                s.add_node(placeholder, bus::F_MYSELF | bus::F_MASTER, now);
            }
            None => return Err("Unrecoverable error: corrupted cluster config file.".into()),
        }
        // The replica's shard is its master's.
        let shards: Vec<(Name, Name)> = s.nodes.values().filter_map(|n| n.slaveof.map(|m| (n.name, m))).collect();
        for (r, m) in shards {
            if let Some(id) = s.nodes.get(&m).map(|n| n.shard_id) {
                s.nodes.get_mut(&r).expect("listed").shard_id = id;
            }
        }
        s.todo_save = false;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_conf_round_trips() {
        let mut s = ClusterState::new(0);
        let me = s.myself;
        for j in 0..5461 {
            s.add_slot(me, j);
        }
        s.add_slot(me, 6000);
        s.current_epoch = 6;
        s.last_vote_epoch = 2;
        let other = random_name();
        {
            let n = s.add_node(other, bus::F_SLAVE, 0);
            n.ip = "127.0.0.1".into();
            n.port = 7001;
            n.cport = 17001;
            n.slaveof = Some(me);
        }
        s.me_mut().ip = "127.0.0.1".into();
        s.me_mut().port = 7000;
        s.me_mut().cport = 17000;
        s.me_mut().config_epoch = 3;
        s.migrating[7] = Some(other);
        let text = s.config_text();
        assert!(text.contains(" myself,master - 0 0 3 connected 0-5460 6000 [7->-"), "{}", text);
        assert!(text.ends_with("vars currentEpoch 6 lastVoteEpoch 2\n"));
        let l = ClusterState::load(&text, 0).unwrap();
        assert_eq!(l.myself, me);
        assert_eq!(l.me().numslots, 5462);
        assert_eq!(l.nodes[&other].slaveof, Some(me));
        assert_eq!(l.migrating[7], Some(other));
        assert_eq!((l.current_epoch, l.last_vote_epoch), (6, 2));
        assert_eq!(l.config_text(), text);
        assert!(ClusterState::load("garbage line\n", 0).is_err());
    }
}
