//! Redis Cluster's algorithm on `ClusterState` (cluster.c): what each bus message does
//! (`process`), the 10 Hz timer (`cron`: pings, PFAIL, handshakes, the replica's election),
//! failure reports and FAIL, votes, slot ownership by config epoch (`update_slots_with`),
//! UPDATE messages, config-epoch collisions and manual failover. No I/O: messages to send and
//! actions on the server are collected in `Effects`, which the caller carries out.

use super::bus::{self, Body, Gossip, Msg, Name, NULL_NAME, SLOTS};
use super::node::{name_str, random_name, CantFailover, ClusterState, Node};
use rand::Rng;

/// Where a message goes: a node's outbound link, or back on the link a message came in on.
pub enum Out {
    To(Name, Vec<u8>),
    Reply(Vec<u8>),
}

/// What the server must do after the cluster's state changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Replicate this master (Redis's replicationSetMaster).
    SetMaster(String, u16),
    /// Stop replicating: we are a master now.
    Promote,
    /// Delete the keys of slots we lost to another master.
    DeleteSlots(Vec<usize>),
    /// Manual failover on a master: pause writes until this time (ms), or 0 to end the pause.
    PauseWrites(i64),
    /// Open an outbound link to this node now.
    Connect(Name),
    /// A message published on another node: deliver it to our subscribers (shard: SPUBLISH).
    Deliver(bool, Vec<u8>, Vec<u8>),
}

#[derive(Default)]
pub struct Effects {
    pub out: Vec<Out>,
    pub actions: Vec<Action>,
}

/// What the algorithm needs from the server and the configuration, read before each call.
pub struct Env {
    pub now: i64,
    pub node_timeout: i64,
    /// Our replication offset (a master's, or what a replica has processed).
    pub my_offset: u64,
    /// A replica: ms since its master link last carried data (Redis's data age).
    pub data_age: i64,
    pub validity_factor: i64,
    pub repl_ping_period: i64,
    pub replica_no_failover: bool,
    pub require_full_coverage: bool,
    pub allow_replica_migration: bool,
    pub migration_barrier: i64,
    pub announce_ip: String,
    pub port: u16,
    /// With tls-cluster: the plaintext client port (`port` is then the TLS one); else 0.
    pub pport: u16,
    pub cport: u16,
    pub hostname: String,
    /// Keys per slot (for the dirty-slot check when a slot is taken from us).
    pub keys_in_slot: Box<dyn Fn(usize) -> usize>,
}

const FAIL_REPORT_VALIDITY_MULT: i64 = 2;
const FAIL_UNDO_TIME_MULT: i64 = 2;
const MF_TIMEOUT: i64 = 5000;
const MF_PAUSE_MULT: i64 = 2;
const WRITABLE_DELAY: i64 = 2000;
const REPLICA_MIGRATION_DELAY: i64 = 5000;

pub struct Bus<'a> {
    pub s: &'a mut ClusterState,
    pub env: &'a Env,
    pub fx: &'a mut Effects,
}

impl Bus<'_> {
    fn my_master(&self) -> Option<Name> {
        self.s.me().slaveof
    }

    /// Redis's clusterBuildMessageHdr.
    fn header(&self, kind: u16) -> Msg {
        let me = self.s.me();
        let master = if me.is_master() { Some(me) } else { me.slaveof.and_then(|m| self.s.nodes.get(&m)) };
        let mut mflags = [0u8; 3];
        if me.is_master() && self.s.mf_end != 0 {
            mflags[0] |= bus::MF_PAUSED;
        }
        Msg {
            kind,
            port: self.env.port,
            current_epoch: self.s.current_epoch,
            config_epoch: master.map_or(0, |m| m.config_epoch),
            offset: self.env.my_offset,
            sender: self.s.myself,
            myslots: master.map(|m| m.slots.clone()).unwrap_or_default(),
            slaveof: me.slaveof.unwrap_or(NULL_NAME),
            myip: self.env.announce_ip.clone(),
            pport: self.env.pport,
            cport: self.env.cport,
            flags: me.flags,
            state: if self.s.state_ok { 0 } else { 1 },
            mflags,
            body: Body::Empty,
        }
    }

    fn count_sent(&mut self, kind: u16) {
        if (kind as usize) < bus::TYPE_COUNT {
            self.s.stats_sent[kind as usize] += 1;
        }
    }

    /// A PING, PONG or MEET with gossip (Redis's clusterSendPing).
    pub fn ping_msg(&mut self, kind: u16, to: Option<&Name>) -> Vec<u8> {
        let now = self.env.now;
        let mut m = self.header(kind);
        m.mflags[0] |= bus::MF_EXT_DATA;
        let freshnodes = self.s.nodes.len().saturating_sub(2);
        let mut wanted = (self.s.nodes.len() / 10).max(3).min(freshnodes);
        let mut gossip: Vec<Gossip> = Vec::new();
        let mut names: Vec<Name> = self.s.nodes.keys().copied().collect();
        let mut rng = rand::thread_rng();
        let mut tries = wanted * 3;
        let entry = |n: &Node| Gossip {
            name: n.name,
            ping_sent: (n.ping_sent / 1000) as u32,
            pong_received: (n.pong_received / 1000) as u32,
            ip: n.ip.clone(),
            port: n.port,
            cport: n.cport,
            flags: n.flags,
            pport: n.pport,
        };
        while wanted > 0 && tries > 0 && !names.is_empty() {
            tries -= 1;
            let i = rng.gen_range(0..names.len());
            let name = names.swap_remove(i);
            let n = &self.s.nodes[&name];
            if name == self.s.myself || Some(&name) == to {
                continue;
            }
            if n.timed_out() {
                continue; // added below with every PFAIL node
            }
            if n.flags & (bus::F_HANDSHAKE | bus::F_NOADDR) != 0 || (n.link.is_none() && n.numslots == 0) {
                continue;
            }
            gossip.push(entry(n));
            wanted -= 1;
        }
        for n in self.s.nodes.values() {
            if n.timed_out() && n.flags & (bus::F_HANDSHAKE | bus::F_NOADDR) == 0 && n.name != self.s.myself {
                gossip.push(entry(n));
            }
        }
        let hostname = (!self.env.hostname.is_empty()).then(|| self.env.hostname.clone());
        m.body = Body::Ping { gossip, hostname };
        if kind == bus::PING {
            if let Some(n) = to.and_then(|t| self.s.nodes.get_mut(t)) {
                if n.ping_sent == 0 {
                    n.ping_sent = now;
                }
            }
        }
        self.count_sent(kind);
        m.encode()
    }

    pub fn send_ping(&mut self, to: Name, kind: u16) {
        let b = self.ping_msg(kind, Some(&to));
        self.fx.out.push(Out::To(to, b));
    }

    /// Every node with a link (not in handshake); `only` limits it to those names (Redis's
    /// CLUSTER_BROADCAST_LOCAL_SLAVES and the shard of PUBLISHSHARD).
    fn linked(&self, only: Option<&[Name]>) -> Vec<Name> {
        self.s
            .nodes
            .values()
            .filter(|n| n.name != self.s.myself && !n.in_handshake() && n.link.is_some())
            .filter(|n| only.is_none_or(|o| o.contains(&n.name)))
            .map(|n| n.name)
            .collect()
    }

    fn broadcast(&mut self, b: Vec<u8>, only: Option<Vec<Name>>) {
        for t in self.linked(only.as_deref()) {
            self.fx.out.push(Out::To(t, b.clone()));
        }
    }

    pub fn broadcast_pong(&mut self, only: Option<Vec<Name>>) {
        for t in self.linked(only.as_deref()) {
            self.send_ping(t, bus::PONG);
        }
    }

    fn send_fail(&mut self, failing: Name) {
        let mut m = self.header(bus::FAIL);
        m.body = Body::Fail { name: failing };
        self.count_sent(bus::FAIL);
        self.broadcast(m.encode(), None);
    }

    fn send_update(&mut self, to: Name, about: Name) {
        let Some(n) = self.s.nodes.get(&about) else { return };
        let body = Body::Update { config_epoch: n.config_epoch, name: n.name, slots: n.slots.clone() };
        let mut m = self.header(bus::UPDATE);
        m.body = body;
        self.count_sent(bus::UPDATE);
        self.fx.out.push(Out::To(to, m.encode()));
    }

    /// PUBLISH / PUBLISHSHARD to every node (Redis propagates Pub/Sub over the bus).
    pub fn publish(&mut self, shard: bool, channel: &[u8], message: &[u8]) {
        let kind = if shard { bus::PUBLISHSHARD } else { bus::PUBLISH };
        let mut m = self.header(kind);
        m.body = Body::Publish { channel: channel.to_vec(), message: message.to_vec() };
        self.count_sent(kind);
        let only = shard.then(|| {
            let master = if self.s.me().is_master() { Some(self.s.myself) } else { self.my_master() };
            let mut v = master.map(|m| self.s.replicas_of(&m)).unwrap_or_default();
            v.extend(master);
            v
        });
        self.broadcast(m.encode(), only);
    }

    // ---- node state changes -------------------------------------------------------------

    fn set_node_as_master(&mut self, name: Name) {
        let Some(n) = self.s.nodes.get_mut(&name) else { return };
        if n.is_master() {
            return;
        }
        n.flags &= !bus::F_SLAVE;
        n.flags |= bus::F_MASTER;
        n.slaveof = None;
        self.s.todo_save = true;
        self.s.todo_update_state = true;
    }

    /// Makes this node a replica of `master` (Redis's clusterSetMaster).
    pub fn set_my_master(&mut self, master: Name) {
        let (ip, port, shard) = match self.s.nodes.get(&master) {
            Some(m) => (m.ip.clone(), m.port, m.shard_id),
            None => return,
        };
        let me = self.s.me_mut();
        if me.is_master() {
            me.flags &= !(bus::F_MASTER | bus::F_MIGRATE_TO);
            me.flags |= bus::F_SLAVE;
        }
        me.slaveof = Some(master);
        me.shard_id = shard;
        for j in 0..SLOTS {
            self.s.migrating[j] = None;
            self.s.importing[j] = None;
        }
        self.reset_manual_failover();
        self.fx.actions.push(Action::SetMaster(ip, port));
        self.s.todo_save = true;
        self.s.todo_update_state = true;
    }

    pub fn reset_manual_failover(&mut self) {
        if self.s.mf_slave.is_some() || (self.s.mf_end != 0 && self.s.me().is_master()) {
            self.fx.actions.push(Action::PauseWrites(0));
        }
        self.s.mf_end = 0;
        self.s.mf_can_start = false;
        self.s.mf_slave = None;
        self.s.mf_master_offset = -1;
    }

    /// Redis's clusterUpdateSlotsConfigWith: slots claimed by `sender` with a newer config
    /// epoch than their owner's become its own; if our master (or we) lost every slot to it,
    /// we follow it.
    fn update_slots_with(&mut self, sender: Name, sender_epoch: u64, slots: &bus::Bitmap) {
        if sender == self.s.myself {
            return;
        }
        let myself = self.s.myself;
        let curmaster = if self.s.me().is_master() { Some(myself) } else { self.my_master() };
        let mut new_master = None;
        let mut dirty = Vec::new();
        for j in 0..SLOTS {
            if !slots.get(j) {
                continue;
            }
            let owner = self.s.slots[j];
            if owner == Some(sender) || self.s.importing[j].is_some() {
                continue;
            }
            let owner_epoch = owner.and_then(|o| self.s.nodes.get(&o)).map_or(0, |n| n.config_epoch);
            if owner.is_none() || owner_epoch < sender_epoch {
                if owner == Some(myself) && (self.env.keys_in_slot)(j) > 0 {
                    dirty.push(j);
                }
                if owner == curmaster && curmaster.is_some() {
                    new_master = Some(sender);
                }
                self.s.del_slot(j);
                self.s.add_slot(sender, j);
                self.s.migrating[j] = None;
                self.s.todo_save = true;
                self.s.todo_update_state = true;
            }
        }
        let cur_slots = curmaster.and_then(|c| self.s.nodes.get(&c)).map_or(0, |n| n.numslots);
        if let (Some(nm), true) = (new_master, cur_slots == 0) {
            if self.env.allow_replica_migration || curmaster != Some(myself) {
                tracing::info!("Configuration change detected. Reconfiguring myself as a replica of {}", name_str(&nm));
                self.set_my_master(nm);
                return;
            }
        }
        if !dirty.is_empty() {
            self.fx.actions.push(Action::DeleteSlots(dirty));
        }
    }

    // ---- failure detection ---------------------------------------------------------------

    fn add_failure_report(&mut self, failing: Name, sender: Name) {
        let now = self.env.now;
        if let Some(n) = self.s.nodes.get_mut(&failing) {
            match n.fail_reports.iter_mut().find(|(r, _)| *r == sender) {
                Some(r) => r.1 = now,
                None => n.fail_reports.push((sender, now)),
            }
        }
    }

    fn valid_failure_reports(&mut self, failing: &Name) -> usize {
        let maxtime = self.env.node_timeout * FAIL_REPORT_VALIDITY_MULT;
        let now = self.env.now;
        let masters: Vec<Name> = self.s.nodes.values().filter(|n| n.is_master()).map(|n| n.name).collect();
        let Some(n) = self.s.nodes.get_mut(failing) else { return 0 };
        n.fail_reports.retain(|(r, t)| now - *t <= maxtime && masters.contains(r));
        n.fail_reports.len()
    }

    /// Redis's markNodeAsFailingIfNeeded.
    fn mark_failing_if_needed(&mut self, name: Name) {
        let needed = self.s.masters_with_slots() / 2 + 1;
        let Some(n) = self.s.nodes.get(&name) else { return };
        if !n.timed_out() || n.failed() {
            return;
        }
        let mut failures = self.valid_failure_reports(&name);
        if self.s.me().is_master() {
            failures += 1;
        }
        if failures < needed {
            return;
        }
        tracing::info!("Marking node {} as failing (quorum reached).", name_str(&name));
        let now = self.env.now;
        let n = self.s.nodes.get_mut(&name).expect("checked");
        n.flags &= !bus::F_PFAIL;
        n.flags |= bus::F_FAIL;
        n.fail_time = now;
        self.send_fail(name);
        self.s.todo_save = true;
        self.s.todo_update_state = true;
    }

    /// Redis's clearNodeFailureIfNeeded.
    fn clear_failure_if_needed(&mut self, name: Name) {
        let now = self.env.now;
        let timeout = self.env.node_timeout;
        let Some(n) = self.s.nodes.get_mut(&name) else { return };
        if !n.failed() {
            return;
        }
        if n.is_replica() || n.numslots == 0 {
            tracing::info!(
                "Clear FAIL state for node {}: {} is reachable again.",
                n.name_str(),
                if n.is_replica() { "replica" } else { "master without slots" }
            );
            n.flags &= !bus::F_FAIL;
            self.s.todo_save = true;
            self.s.todo_update_state = true;
        } else if now - n.fail_time > timeout * FAIL_UNDO_TIME_MULT {
            tracing::info!(
                "Clear FAIL state for node {}: is reachable again and nobody is serving its slots after some time.",
                n.name_str()
            );
            n.flags &= !bus::F_FAIL;
            self.s.todo_save = true;
            self.s.todo_update_state = true;
        }
    }

    // ---- messages ------------------------------------------------------------------------

    /// Handles one message. `link_node`: the node of the outbound link it came on (None for an
    /// inbound link); `peer_ip`: the remote address of the connection; `local_ip`: ours.
    pub fn process(&mut self, m: &Msg, link_node: Option<Name>, peer_ip: &str, local_ip: &str) {
        let now = self.env.now;
        if (m.kind as usize) < bus::TYPE_COUNT {
            self.s.stats_received[m.kind as usize] += 1;
        }
        let sender = self.s.nodes.get(&m.sender).filter(|n| !n.in_handshake()).map(|n| n.name);
        if let Some(sn) = sender {
            let n = self.s.nodes.get_mut(&sn).expect("found");
            n.data_received = now;
            if m.current_epoch > self.s.current_epoch {
                self.s.current_epoch = m.current_epoch;
                self.s.todo_save = true;
            }
            let n = self.s.nodes.get_mut(&sn).expect("found");
            if m.config_epoch > n.config_epoch {
                n.config_epoch = m.config_epoch;
                self.s.todo_save = true;
            }
            n.repl_offset = m.offset;
            n.repl_offset_time = now;
            n.pport = m.pport;
            // A replica in a manual failover learns its paused master's offset.
            if self.my_master() == Some(sn) && m.mflags[0] & bus::MF_PAUSED != 0 && self.s.mf_end != 0 && self.s.mf_master_offset == -1 {
                self.s.mf_master_offset = m.offset as i64;
                tracing::info!("Received replication offset for paused master manual failover: {}", m.offset);
            }
        }
        let sender_ip = if m.myip.is_empty() { peer_ip.to_string() } else { m.myip.clone() };

        if matches!(m.kind, bus::PING | bus::MEET) {
            // Learn our own address from a peer's view of the connection, as Redis does.
            if (m.kind == bus::MEET || self.s.me().ip.is_empty())
                && self.env.announce_ip.is_empty()
                && !local_ip.is_empty()
                && self.s.me().ip != local_ip
            {
                self.s.me_mut().ip = local_ip.to_string();
                self.s.todo_save = true;
            }
            if sender.is_none() && m.kind == bus::MEET && !self.s.nodes.contains_key(&m.sender) {
                // Redis adds the unknown sender in handshake and learns its name from our PING's
                // PONG; we start the handshake the same way.
                self.start_handshake(&sender_ip, m.port, m.cport, false);
                self.process_gossip(m, None);
            }
            let b = self.ping_msg(bus::PONG, None);
            self.fx.out.push(Out::Reply(b));
        }

        if matches!(m.kind, bus::PING | bus::PONG | bus::MEET) {
            if let Some(ln) = link_node {
                let in_handshake = self.s.nodes.get(&ln).is_some_and(|n| n.in_handshake());
                if in_handshake {
                    if sender.is_some() {
                        // Known already under its real name: drop the handshake entry.
                        self.update_address(m.sender, &sender_ip, m.port, m.cport);
                        self.s.del_node(&ln);
                        return;
                    }
                    // Rename the handshake node to the name it gave.
                    let mut n = self.s.nodes.remove(&ln).expect("found");
                    tracing::info!("Handshake with node {} completed.", name_str(&m.sender));
                    n.name = m.sender;
                    n.flags &= !bus::F_HANDSHAKE;
                    n.flags |= m.flags & (bus::F_MASTER | bus::F_SLAVE);
                    self.s.nodes.insert(m.sender, n);
                    self.s.todo_save = true;
                } else if ln != m.sender {
                    // The node at this address has another name now: forget its address.
                    if let Some(n) = self.s.nodes.get_mut(&ln) {
                        tracing::info!("PONG contains mismatching sender ID. About node {} added to the cluster", n.name_str());
                        n.flags |= bus::F_NOADDR;
                        n.ip.clear();
                        n.port = 0;
                        n.cport = 0;
                        n.link = None;
                        self.s.todo_save = true;
                    }
                    return;
                }
            }
            // Handshake just completed: the node is known by its real name now.
            let sender = self.s.nodes.get(&m.sender).filter(|n| !n.in_handshake()).map(|n| n.name);
            if let (Some(sn), bus::PING) = (sender, m.kind) {
                self.update_address(sn, &sender_ip, m.port, m.cport);
            }
            if let (Some(ln), bus::PONG) = (link_node, m.kind) {
                if let Some(n) = self.s.nodes.get_mut(&m.sender) {
                    if ln == m.sender || n.name == m.sender {
                        n.pong_received = now;
                        n.ping_sent = 0;
                        if n.timed_out() {
                            n.flags &= !bus::F_PFAIL;
                            self.s.todo_update_state = true;
                        } else if n.failed() {
                            self.clear_failure_if_needed(m.sender);
                        }
                    }
                }
            }
            let Some(sn) = sender else { return };
            if let Some(h) = match &m.body {
                Body::Ping { hostname, .. } => Some(hostname.clone().unwrap_or_default()),
                _ => None,
            } {
                let n = self.s.nodes.get_mut(&sn).expect("found");
                if n.hostname != h {
                    n.hostname = h;
                    self.s.todo_save = true;
                }
            }
            // Role.
            if m.slaveof == NULL_NAME {
                self.set_node_as_master(sn);
            } else {
                let n = self.s.nodes.get_mut(&sn).expect("found");
                if n.is_master() {
                    // A master turned into a replica.
                    n.flags &= !(bus::F_MASTER | bus::F_MIGRATE_TO);
                    n.flags |= bus::F_SLAVE;
                    self.s.del_node_slots(&sn);
                    self.s.todo_save = true;
                    self.s.todo_update_state = true;
                }
                let n = self.s.nodes.get_mut(&sn).expect("found");
                if n.slaveof != Some(m.slaveof) {
                    n.slaveof = Some(m.slaveof);
                    self.s.todo_save = true;
                }
                // A master that has had a replica may receive a migrating one if orphaned.
                if let Some(master) = self.s.nodes.get_mut(&m.slaveof) {
                    master.flags |= bus::F_MIGRATE_TO;
                }
                if let Some(shard) = self.s.nodes.get(&m.slaveof).map(|mm| mm.shard_id) {
                    self.s.nodes.get_mut(&sn).expect("found").shard_id = shard;
                }
            }
            // Slots.
            let sender_is_master = self.s.nodes[&sn].is_master();
            let sender_master = if sender_is_master { Some(sn) } else { self.s.nodes[&sn].slaveof };
            let dirty = sender_master.and_then(|x| self.s.nodes.get(&x)).is_some_and(|x| x.slots != m.myslots);
            if sender_is_master && dirty {
                self.update_slots_with(sn, m.config_epoch, &m.myslots);
            }
            if dirty {
                for j in 0..SLOTS {
                    if !m.myslots.get(j) {
                        continue;
                    }
                    let Some(owner) = self.s.slots[j] else { continue };
                    if owner == sn {
                        continue;
                    }
                    if self.s.nodes.get(&owner).is_some_and(|o| o.config_epoch > m.config_epoch) {
                        tracing::debug!(
                            "Node {} has old slots configuration, sending an UPDATE message about {}",
                            name_str(&sn),
                            name_str(&owner)
                        );
                        self.send_update(sn, owner);
                        break;
                    }
                }
            }
            // Config epoch collision between two masters.
            if sender_is_master && self.s.me().is_master() && m.config_epoch == self.s.me().config_epoch && m.config_epoch != 0 {
                self.handle_epoch_collision(sn);
            }
            self.process_gossip(m, Some(sn));
            return;
        }

        match (&m.body, m.kind) {
            (Body::Fail { name }, bus::FAIL) => {
                if sender.is_none() {
                    return;
                }
                let me = self.s.myself;
                if let Some(n) = self.s.nodes.get_mut(name) {
                    if n.name != me && !n.failed() {
                        tracing::info!("FAIL message received from {} about {}", name_str(&m.sender), n.name_str());
                        n.flags |= bus::F_FAIL;
                        n.fail_time = now;
                        n.flags &= !bus::F_PFAIL;
                        self.s.todo_save = true;
                        self.s.todo_update_state = true;
                    }
                }
            }
            (Body::Publish { channel, message }, bus::PUBLISH | bus::PUBLISHSHARD) if sender.is_some() => {
                self.fx.actions.push(Action::Deliver(m.kind == bus::PUBLISHSHARD, channel.clone(), message.clone()));
            }
            (_, bus::AUTH_REQUEST) => {
                if let Some(sn) = sender {
                    self.maybe_vote(sn, m);
                }
            }
            (_, bus::AUTH_ACK) => {
                let Some(sn) = sender else { return };
                let n = &self.s.nodes[&sn];
                if n.is_master() && n.numslots > 0 && m.current_epoch >= self.s.failover_auth_epoch {
                    self.s.failover_auth_count += 1;
                    self.handle_replica_failover();
                }
            }
            (_, bus::MFSTART) => {
                let Some(sn) = sender else { return };
                if self.s.nodes[&sn].slaveof != Some(self.s.myself) {
                    return;
                }
                self.reset_manual_failover();
                self.s.mf_end = now + MF_TIMEOUT;
                self.s.mf_slave = Some(sn);
                self.fx.actions.push(Action::PauseWrites(now + MF_TIMEOUT * MF_PAUSE_MULT));
                tracing::info!("Manual failover requested by replica {}.", name_str(&sn));
                // The replica learns our offset from this ping (PAUSED flag set).
                self.send_ping(sn, bus::PING);
            }
            (Body::Update { config_epoch, name, slots }, bus::UPDATE) => {
                if sender.is_none() {
                    return;
                }
                let Some(n) = self.s.nodes.get(name) else { return };
                if n.config_epoch >= *config_epoch {
                    return;
                }
                let name = *name;
                if n.is_replica() {
                    self.set_node_as_master(name);
                }
                self.s.nodes.get_mut(&name).expect("found").config_epoch = *config_epoch;
                self.s.todo_save = true;
                self.update_slots_with(name, *config_epoch, slots);
            }
            _ => {}
        }
    }

    fn update_address(&mut self, name: Name, ip: &str, port: u16, cport: u16) {
        let Some(n) = self.s.nodes.get_mut(&name) else { return };
        if n.ip == ip && n.port == port && n.cport == cport {
            return;
        }
        n.ip = ip.to_string();
        n.port = port;
        n.cport = cport;
        n.flags &= !bus::F_NOADDR;
        n.link = None;
        tracing::info!("Address updated for node {} (), now {}:{}", n.name_str(), ip, port);
        let is_my_master = self.my_master() == Some(name);
        self.s.todo_save = true;
        if is_my_master {
            self.fx.actions.push(Action::SetMaster(ip.to_string(), port));
        }
    }

    fn process_gossip(&mut self, m: &Msg, sender: Option<Name>) {
        let Body::Ping { gossip, .. } = &m.body else { return };
        let now = self.env.now;
        let sender_is_master = sender.and_then(|s| self.s.nodes.get(&s)).is_some_and(|n| n.is_master());
        for g in gossip {
            if let Some(n) = self.s.nodes.get(&g.name) {
                let name = n.name;
                if let (Some(sn), true) = (sender, sender_is_master) {
                    if name != self.s.myself {
                        if g.flags & (bus::F_FAIL | bus::F_PFAIL) != 0 {
                            self.add_failure_report(name, sn);
                            self.mark_failing_if_needed(name);
                        } else if let Some(n) = self.s.nodes.get_mut(&name) {
                            n.fail_reports.retain(|(r, _)| *r != sn);
                        }
                    }
                }
                let n = self.s.nodes.get_mut(&name).expect("found");
                if g.flags & (bus::F_FAIL | bus::F_PFAIL) == 0 && n.ping_sent == 0 && n.fail_reports.is_empty() {
                    let pongtime = g.pong_received as i64 * 1000;
                    if pongtime <= now + 500 && pongtime > n.pong_received {
                        n.pong_received = pongtime;
                    }
                }
                if n.flags & (bus::F_FAIL | bus::F_PFAIL) != 0
                    && n.link.is_none()
                    && g.flags & bus::F_NOADDR == 0
                    && g.flags & (bus::F_FAIL | bus::F_PFAIL) == 0
                    && (n.ip != g.ip || n.port != g.port || n.cport != g.cport)
                    && name != self.s.myself
                {
                    n.ip = g.ip.clone();
                    n.port = g.port;
                    n.cport = g.cport;
                    n.flags &= !bus::F_NOADDR;
                    self.s.todo_save = true;
                }
            } else if sender.is_some() && g.flags & bus::F_NOADDR == 0 && !self.blacklisted(&g.name) && g.port != 0 {
                self.start_handshake(&g.ip, g.port, g.cport, false);
            }
        }
    }

    fn blacklisted(&mut self, name: &Name) -> bool {
        let now = self.env.now;
        self.s.blacklist.retain(|_, until| *until > now);
        self.s.blacklist.contains_key(name)
    }

    /// Redis's clusterStartHandshake: a node in handshake with a random name, at that address.
    pub fn start_handshake(&mut self, ip: &str, port: u16, cport: u16, meet: bool) -> bool {
        let exists = self.s.nodes.values().any(|n| n.in_handshake() && n.ip.eq_ignore_ascii_case(ip) && n.port == port && n.cport == cport);
        if exists {
            return false;
        }
        let now = self.env.now;
        let name = random_name();
        let n = self.s.add_node(name, bus::F_HANDSHAKE | if meet { bus::F_MEET } else { 0 }, now);
        n.ip = ip.to_string();
        n.port = port;
        n.cport = cport;
        self.fx.actions.push(Action::Connect(name));
        true
    }

    fn handle_epoch_collision(&mut self, sender: Name) {
        if sender <= self.s.myself {
            return;
        }
        self.s.current_epoch += 1;
        let e = self.s.current_epoch;
        self.s.me_mut().config_epoch = e;
        self.s.todo_save = true;
        tracing::info!("WARNING: configEpoch collision with node {}. configEpoch set to {}", name_str(&sender), e);
    }

    /// Redis's clusterSendFailoverAuthIfNeeded: a master votes once per epoch.
    fn maybe_vote(&mut self, requester: Name, m: &Msg) {
        let now = self.env.now;
        let me = self.s.me();
        if me.is_replica() || me.numslots == 0 {
            return;
        }
        if m.current_epoch < self.s.current_epoch {
            return;
        }
        if self.s.last_vote_epoch == self.s.current_epoch {
            return;
        }
        let Some(node) = self.s.nodes.get(&requester) else { return };
        let force = m.mflags[0] & bus::MF_FORCEACK != 0;
        let Some(master) = node.slaveof.filter(|_| node.is_replica()).and_then(|mm| self.s.nodes.get(&mm)) else { return };
        if !master.failed() && !force {
            return;
        }
        if now - master.voted_time < self.env.node_timeout * 2 {
            return;
        }
        for j in 0..SLOTS {
            if !m.myslots.get(j) {
                continue;
            }
            let Some(owner) = self.s.slots[j] else { continue };
            if self.s.nodes.get(&owner).is_some_and(|o| o.config_epoch > m.config_epoch) {
                return;
            }
        }
        let master = master.name;
        self.s.last_vote_epoch = self.s.current_epoch;
        self.s.nodes.get_mut(&master).expect("found").voted_time = now;
        self.s.todo_save = true;
        tracing::info!("Failover auth granted to {} for epoch {}", name_str(&requester), self.s.current_epoch);
        let h = self.header(bus::AUTH_ACK);
        self.count_sent(bus::AUTH_ACK);
        self.fx.out.push(Out::To(requester, h.encode()));
    }

    // ---- the timer -----------------------------------------------------------------------

    /// Redis's clusterCron, run 10 times a second; `iteration` counts calls.
    pub fn cron(&mut self, iteration: u64) {
        let now = self.env.now;
        let timeout = self.env.node_timeout;
        let handshake_timeout = timeout.max(1000);
        // Handshakes that took too long; links to open.
        let names: Vec<Name> = self.s.nodes.keys().copied().collect();
        for name in &names {
            let Some(n) = self.s.nodes.get(name) else { continue };
            if n.name == self.s.myself || !n.has_addr() {
                continue;
            }
            if n.in_handshake() && now - n.ctime > handshake_timeout {
                self.s.del_node(name);
                continue;
            }
            if n.link.is_none() {
                self.fx.actions.push(Action::Connect(*name));
            }
        }
        // Once a second, ping a random node among 5 with the oldest PONG.
        if iteration.is_multiple_of(10) {
            let mut rng = rand::thread_rng();
            let mut best: Option<(i64, Name)> = None;
            for _ in 0..5 {
                let i = rng.gen_range(0..names.len().max(1));
                let Some(n) = names.get(i).and_then(|x| self.s.nodes.get(x)) else { continue };
                if n.name == self.s.myself || n.link.is_none() || n.ping_sent != 0 || n.flags & (bus::F_HANDSHAKE | bus::F_NOADDR) != 0 {
                    continue;
                }
                if best.is_none_or(|(t, _)| n.pong_received < t) {
                    best = Some((n.pong_received, n.name));
                }
            }
            if let Some((_, b)) = best {
                self.send_ping(b, bus::PING);
            }
        }
        // PFAIL, stale links, pings due.
        let mut update = false;
        for name in &names {
            let Some(n) = self.s.nodes.get_mut(name) else { continue };
            if n.name == self.s.myself || n.flags & (bus::F_NOADDR | bus::F_HANDSHAKE) != 0 {
                continue;
            }
            if let Some(l) = &n.link {
                if now - l.ctime > timeout && n.ping_sent != 0 && now - n.ping_sent > timeout / 2 && now - n.data_received > timeout / 2 {
                    // A link that seems fine but carries nothing: reconnect.
                    n.link = None;
                }
            }
            if n.link.is_some() && n.ping_sent == 0 && now - n.pong_received > timeout / 2 {
                self.send_ping(*name, bus::PING);
                continue;
            }
            let n = self.s.nodes.get_mut(name).expect("found");
            if self.s.mf_end != 0 && self.s.mf_slave == Some(*name) && n.link.is_some() {
                self.send_ping(*name, bus::PING);
                continue;
            }
            let n = self.s.nodes.get_mut(name).expect("found");
            if n.ping_sent == 0 {
                continue;
            }
            let delay = (now - n.ping_sent).min(now - n.data_received);
            if delay > timeout && n.flags & (bus::F_PFAIL | bus::F_FAIL) == 0 {
                tracing::debug!("*** NODE {} possibly failing", n.name_str());
                n.flags |= bus::F_PFAIL;
                update = true;
            }
        }
        if update {
            self.s.todo_update_state = true;
        }
        // Manual failover timeout.
        if self.s.mf_end != 0 && self.s.mf_end < now {
            tracing::warn!("Manual failover timed out.");
            self.reset_manual_failover();
        }
        if self.s.me().is_replica() {
            self.handle_manual_failover();
            self.handle_replica_failover();
            self.handle_replica_migration();
        }
        self.update_state();
    }

    /// Working replicas of a master (not failing).
    fn ok_replicas(&self, master: &Name) -> usize {
        self.s
            .nodes
            .values()
            .filter(|n| n.slaveof == Some(*master) && n.is_replica() && n.flags & (bus::F_FAIL | bus::F_PFAIL) == 0)
            .count()
    }

    /// Redis's clusterHandleSlaveMigration: when a master with slots has lost every replica
    /// (orphaned for 5 s), the replica with the smallest id among the masters with the most
    /// replicas moves to it, if its own master keeps more than `cluster-migration-barrier`.
    fn handle_replica_migration(&mut self) {
        let now = self.env.now;
        let masters: Vec<Name> = self.s.nodes.values().filter(|n| n.is_master() && n.numslots > 0).map(|n| n.name).collect();
        let mut max_replicas = 0;
        let mut orphan: Option<Name> = None;
        for m in &masters {
            let ok = self.ok_replicas(m);
            max_replicas = max_replicas.max(ok);
            let n = self.s.nodes.get_mut(m).expect("listed");
            if ok == 0 && n.flags & bus::F_MIGRATE_TO != 0 && !n.failed() {
                if n.orphaned_time == 0 {
                    n.orphaned_time = now;
                }
                orphan = orphan.or(Some(*m));
            } else {
                n.orphaned_time = 0;
            }
        }
        let Some(mine) = self.my_master() else { return };
        if !self.env.allow_replica_migration || !self.s.state_ok || self.s.mf_end != 0 {
            return;
        }
        let mine_ok = self.ok_replicas(&mine);
        if mine_ok != max_replicas || max_replicas < 2 || mine_ok as i64 <= self.env.migration_barrier {
            return;
        }
        let Some(target) = orphan else { return };
        if now - self.s.nodes[&target].orphaned_time <= REPLICA_MIGRATION_DELAY {
            return;
        }
        // The candidate: the smallest id among the replicas of the masters with the most.
        let candidate = self
            .s
            .nodes
            .values()
            .filter(|n| n.is_replica() && n.flags & (bus::F_FAIL | bus::F_PFAIL) == 0)
            .filter(|n| n.slaveof.is_some_and(|m| masters.contains(&m) && self.ok_replicas(&m) == max_replicas))
            .map(|n| n.name)
            .min();
        if candidate == Some(self.s.myself) {
            tracing::info!("Migrating to orphaned master {}", name_str(&target));
            self.set_my_master(target);
        }
    }

    fn handle_manual_failover(&mut self) {
        if self.s.mf_end == 0 || self.s.mf_can_start || self.s.mf_master_offset == -1 {
            return;
        }
        if self.s.mf_master_offset as u64 == self.env.my_offset {
            self.s.mf_can_start = true;
            tracing::info!("All master replication stream processed, manual failover can start.");
        }
    }

    /// Our rank among our master's replicas: how many have a greater offset.
    fn my_rank(&self) -> usize {
        let Some(m) = self.my_master() else { return 0 };
        let mine = self.env.my_offset;
        self.s
            .nodes
            .values()
            .filter(|n| n.slaveof == Some(m) && n.name != self.s.myself && n.flags & bus::F_NOFAILOVER == 0 && n.repl_offset > mine)
            .count()
    }

    fn set_cant_failover(&mut self, why: CantFailover) {
        if self.s.cant_failover != why {
            self.s.cant_failover = why;
            let msg = match why {
                CantFailover::DataAge => "Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.",
                CantFailover::WaitingDelay => "Waiting the delay before I can start a new failover.",
                CantFailover::Expired => "Failover attempt expired.",
                CantFailover::WaitingVotes => "Waiting for votes, but majority still not reached.",
                CantFailover::None => return,
            };
            tracing::info!("Currently unable to failover: {}", msg);
        }
    }

    /// Redis's clusterHandleSlaveFailover: the replica's side of an election.
    pub fn handle_replica_failover(&mut self) {
        let now = self.env.now;
        let timeout = self.env.node_timeout;
        let needed = self.s.masters_with_slots() / 2 + 1;
        let manual = self.s.mf_end != 0 && self.s.mf_can_start;
        let me = self.s.me();
        let Some(master) = me.slaveof.filter(|_| me.is_replica()).and_then(|m| self.s.nodes.get(&m)) else { return };
        if (!manual && (!master.failed() || self.env.replica_no_failover)) || master.numslots == 0 {
            self.s.cant_failover = CantFailover::None;
            return;
        }
        let mut data_age = self.env.data_age;
        if data_age > timeout {
            data_age -= timeout;
        }
        if self.env.validity_factor > 0 && data_age > self.env.repl_ping_period * 1000 + timeout * self.env.validity_factor && !manual {
            self.set_cant_failover(CantFailover::DataAge);
            return;
        }
        let auth_timeout = (timeout * 2).max(2000);
        let auth_retry = auth_timeout * 2;
        if now - self.s.failover_auth_time > auth_retry {
            let mut rng = rand::thread_rng();
            self.s.failover_auth_time = now + 500 + rng.gen_range(0..500);
            self.s.failover_auth_count = 0;
            self.s.failover_auth_sent = false;
            self.s.failover_auth_rank = self.my_rank();
            self.s.failover_auth_time += self.s.failover_auth_rank as i64 * 1000;
            if self.s.mf_end != 0 {
                self.s.failover_auth_time = now;
                self.s.failover_auth_rank = 0;
            }
            tracing::info!(
                "Start of election delayed for {} milliseconds (rank #{}, offset {}).",
                self.s.failover_auth_time - now,
                self.s.failover_auth_rank,
                self.env.my_offset
            );
            // Tell the other replicas of our master our offset.
            let others = self.my_master().map(|m| self.s.replicas_of(&m)).unwrap_or_default();
            self.broadcast_pong(Some(others));
            return;
        }
        if !self.s.failover_auth_sent && self.s.mf_end == 0 {
            let rank = self.my_rank();
            if rank > self.s.failover_auth_rank {
                let added = (rank - self.s.failover_auth_rank) as i64 * 1000;
                self.s.failover_auth_time += added;
                self.s.failover_auth_rank = rank;
                tracing::info!("Replica rank updated to #{}, added {} milliseconds of delay.", rank, added);
            }
        }
        if now < self.s.failover_auth_time {
            self.set_cant_failover(CantFailover::WaitingDelay);
            return;
        }
        if now - self.s.failover_auth_time > auth_timeout {
            self.set_cant_failover(CantFailover::Expired);
            return;
        }
        if !self.s.failover_auth_sent {
            self.s.current_epoch += 1;
            self.s.failover_auth_epoch = self.s.current_epoch;
            tracing::info!("Starting a failover election for epoch {}.", self.s.current_epoch);
            let mut h = self.header(bus::AUTH_REQUEST);
            if self.s.mf_end != 0 {
                h.mflags[0] |= bus::MF_FORCEACK;
            }
            self.count_sent(bus::AUTH_REQUEST);
            self.broadcast(h.encode(), None);
            self.s.failover_auth_sent = true;
            self.s.todo_save = true;
            return;
        }
        if self.s.failover_auth_count >= needed {
            tracing::info!("Failover election won: I'm the new master.");
            if self.s.me().config_epoch < self.s.failover_auth_epoch {
                let e = self.s.failover_auth_epoch;
                self.s.me_mut().config_epoch = e;
                tracing::info!("configEpoch set to {} after successful failover", e);
            }
            self.replace_my_master();
            self.s.cant_failover = CantFailover::None;
        } else {
            self.set_cant_failover(CantFailover::WaitingVotes);
        }
    }

    /// Redis's clusterFailoverReplaceYourMaster: take the master's slots and tell everyone.
    pub fn replace_my_master(&mut self) {
        let Some(old) = self.my_master() else { return };
        let myself = self.s.myself;
        if self.s.me().is_master() {
            return;
        }
        self.set_node_as_master(myself);
        self.fx.actions.push(Action::Promote);
        for j in 0..SLOTS {
            if self.s.slots[j] == Some(old) {
                self.s.del_slot(j);
                self.s.add_slot(myself, j);
            }
        }
        self.s.todo_save = true;
        self.s.todo_update_state = true;
        self.update_state();
        self.broadcast_pong(None);
        self.reset_manual_failover();
    }

    /// Redis's clusterBumpConfigEpochWithoutConsensus. True when the epoch moved.
    pub fn bump_epoch_without_consensus(&mut self) -> bool {
        let max = self.s.nodes.values().map(|n| n.config_epoch).max().unwrap_or(0);
        let me = self.s.me().config_epoch;
        if me == 0 || me != max || self.s.nodes.values().filter(|n| n.config_epoch == max).count() > 1 {
            self.s.current_epoch += 1;
            let e = self.s.current_epoch;
            self.s.me_mut().config_epoch = e;
            self.s.todo_save = true;
            tracing::info!("New configEpoch set to {}", e);
            true
        } else {
            false
        }
    }

    /// Redis's clusterUpdateState.
    pub fn update_state(&mut self) {
        self.s.todo_update_state = false;
        let now = self.env.now;
        let me_master = self.s.me().is_master();
        if me_master && !self.s.state_ok && now - self.s.start_time < WRITABLE_DELAY {
            return;
        }
        let mut ok = true;
        if self.env.require_full_coverage {
            for j in 0..SLOTS {
                match self.s.slots[j].and_then(|o| self.s.nodes.get(&o)) {
                    Some(n) if !n.failed() => {}
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        let mut size = 0;
        let mut reachable = 0;
        for n in self.s.nodes.values() {
            if n.is_master() && n.numslots > 0 {
                size += 1;
                if n.flags & (bus::F_FAIL | bus::F_PFAIL) == 0 {
                    reachable += 1;
                }
            }
        }
        self.s.size = size;
        if reachable < size / 2 + 1 {
            ok = false;
            self.s.among_minority_time = now;
        }
        if ok != self.s.state_ok {
            let rejoin_delay = self.env.node_timeout.clamp(500, 5000);
            if ok && me_master && now - self.s.among_minority_time < rejoin_delay {
                return;
            }
            tracing::info!("Cluster state changed: {}", if ok { "ok" } else { "fail" });
            self.s.state_ok = ok;
        }
    }
}
