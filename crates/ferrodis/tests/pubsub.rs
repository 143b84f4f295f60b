//! Pub/Sub with several clients, reply for reply against redis-server 7.0.15 (RESP2 subscriber
//! mode and RESP3 pushes), and the output limit for a subscriber that never reads.

use crate::blocking::{same_as_redis, Step::*};
use crate::harness::{Client, Server};
use std::time::Duration;

#[test]
fn subscribe_publish_in_resp2_and_resp3() {
    same_as_redis(
        "pubsub",
        &[
            Cmd(1, "SUBSCRIBE news"),
            Send(1, "SUBSCRIBE sport news"),
            Read(1),
            Read(1),
            Cmd(1, "PSUBSCRIBE n*"),
            Cmd(2, "PUBLISH news hello"),
            Read(1),
            Read(1),
            Cmd(2, "PUBLISH sport goal"),
            Read(1),
            Cmd(2, "PUBLISH nothing x"),
            Read(1),
            Cmd(2, "PUBLISH other x"),
            Cmd(2, "PUBSUB NUMSUB news sport other"),
            Cmd(2, "PUBSUB NUMPAT"),
            Cmd(2, "PUBSUB CHANNELS s*"),
            Cmd(2, "PUBSUB CHANNELS nomatch*"),
            // RESP2 subscriber mode: only the subscription commands, PING, QUIT, RESET.
            Cmd(1, "GET k"),
            Cmd(1, "PING"),
            Cmd(1, "PING hi"),
            Send(1, "UNSUBSCRIBE news sport"),
            Read(1),
            Read(1),
            Cmd(1, "PUNSUBSCRIBE"),
            Cmd(1, "UNSUBSCRIBE"),
            Cmd(1, "PUNSUBSCRIBE"),
            Cmd(1, "GET k"),
            Cmd(1, "PING"),
            Cmd(2, "PUBSUB NUMSUB news"),
            // Sharded channels.
            Cmd(1, "SSUBSCRIBE sh"),
            Cmd(2, "SPUBLISH sh m1"),
            Read(1),
            Cmd(2, "PUBLISH sh notshard"),
            Cmd(2, "PUBSUB SHARDCHANNELS"),
            Cmd(2, "PUBSUB SHARDNUMSUB sh x"),
            Cmd(1, "SUNSUBSCRIBE"),
            // RESP3: pushes on a normal connection, which may run anything.
            Quiet(3, "HELLO 3"),
            Cmd(3, "SUBSCRIBE r3"),
            Cmd(3, "SET k v"),
            Cmd(2, "PUBLISH r3 pushed"),
            Read(3),
            Cmd(3, "PSUBSCRIBE r*"),
            Cmd(2, "PUBLISH r3 twice"),
            Read(3),
            Read(3),
            // Its own PUBLISH: the two pushes come before the reply.
            Send(3, "PUBLISH r3 self"),
            Read(3),
            Read(3),
            Read(3),
            // And the keyspace events of its own write.
            Cmd(2, "CONFIG SET notify-keyspace-events KEA"),
            Cmd(3, "SUBSCRIBE __keyevent@0__:set"),
            Send(3, "SET own v"),
            Read(3),
            Read(3),
            Cmd(2, "CONFIG SET notify-keyspace-events \"\""),
            Cmd(3, "PING"),
            Cmd(3, "RESET"),
            Cmd(2, "PUBLISH r3 gone"),
            Cmd(2, "PUBSUB NUMPAT"),
            Cmd(2, "PUBSUB HELP"),
        ],
    );
}

/// A subscriber that never reads is disconnected at the pubsub hard limit, and the server keeps
/// answering with bounded memory.
#[test]
fn subscriber_that_never_reads_is_disconnected() {
    let f = Server::ferrodis(&["--client-output-buffer-limit", "pubsub 1mb 512kb 60"]);
    let mut sub = Client::connect(f.port);
    sub.cmd(&["SUBSCRIBE", "flood"]);
    // Let the kernel buffers be small, then stop reading.
    let mut publisher = f.client();
    let payload = "x".repeat(64 * 1024);
    let mut closed = false;
    for _ in 0..2000 {
        let r = publisher.cmd(&["PUBLISH", "flood", &payload]);
        if r == b":0\r\n" {
            closed = true;
            break;
        }
    }
    assert!(closed, "the subscriber should have been dropped once past the hard limit");
    let info = publisher.text(&["INFO", "stats"]);
    assert!(info.contains("client_output_buffer_limit_disconnections:1"), "{info}");
    assert!(crate::harness::wait_until(Duration::from_secs(10), || publisher.text(&["PUBSUB", "NUMSUB", "flood"]).ends_with(":0\r\n")));
    drop(sub);
}

/// Keyspace notifications (notify-keyspace-events KEA) for the commands that fire them, in
/// Redis's order (the command's event, then "del" when the key went away), expiry included.
#[test]
fn keyspace_notifications_match_redis() {
    same_as_redis(
        "keyspace events",
        &[
            Cmd(2, "CONFIG SET notify-keyspace-events KEA"),
            Cmd(1, "PSUBSCRIBE __key*__:*"),
            Cmd(2, "SET k v"),
            Read(1),
            Read(1),
            Cmd(2, "SET k v EX 100"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "INCR n"),
            Read(1),
            Read(1),
            Cmd(2, "APPEND k x"),
            Read(1),
            Read(1),
            Cmd(2, "RPUSH l a"),
            Read(1),
            Read(1),
            Cmd(2, "LPOP l"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "HSET h f v"),
            Read(1),
            Read(1),
            Cmd(2, "HDEL h f"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "SADD s a b"),
            Read(1),
            Read(1),
            Cmd(2, "SMOVE s t a"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "ZADD z 1 m"),
            Read(1),
            Read(1),
            Cmd(2, "ZINCRBY z 1 m"),
            Read(1),
            Read(1),
            Cmd(2, "ZADD z INCR 1 m"),
            Read(1),
            Read(1),
            Cmd(2, "DEL k n nokey"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "RENAME s s2"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "EXPIRE s2 100"),
            Read(1),
            Read(1),
            Cmd(2, "PERSIST s2"),
            Read(1),
            Read(1),
            Cmd(2, "EXPIRE s2 -1"),
            Read(1),
            Read(1),
            Cmd(2, "MSET a 1 b 2"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "SETEX se 100 v"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "LPUSH l2 x"),
            Read(1),
            Read(1),
            Cmd(2, "RPOPLPUSH l2 l3"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "ZPOPMIN z"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "SET nx 1 NX"),
            Read(1),
            Read(1),
            Cmd(2, "SET nx 2 NX"),
            Cmd(2, "GETDEL nx"),
            Read(1),
            Read(1),
            Cmd(2, "HINCRBY h2 f 1"),
            Read(1),
            Read(1),
            Cmd(2, "SPOP t"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "ZREM nozset m"),
            Cmd(2, "LTRIM l3 5 10"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "SET e v PX 1"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Gone(2, "e"),
            Read(1),
            Read(1),
            Cmd(2, "SADD s1 a b"),
            Read(1),
            Read(1),
            Cmd(2, "SADD s2 b c"),
            Read(1),
            Read(1),
            Cmd(2, "SINTERSTORE d s1 s2"),
            Read(1),
            Read(1),
            Cmd(2, "SINTERSTORE d s1 nokey"),
            Read(1),
            Read(1),
            Cmd(2, "SINTERSTORE d s1 nokey"),
            Cmd(2, "ZADD z1 1 a"),
            Read(1),
            Read(1),
            Cmd(2, "ZUNIONSTORE zd 1 z1"),
            Read(1),
            Read(1),
            Cmd(2, "ZRANGESTORE zd2 z1 0 -1"),
            Read(1),
            Read(1),
            Cmd(2, "RPUSH sl 3 1"),
            Read(1),
            Read(1),
            Cmd(2, "SORT sl STORE sd"),
            Read(1),
            Read(1),
            Cmd(2, "SET b1 x"),
            Read(1),
            Read(1),
            Cmd(2, "BITOP NOT b2 b1"),
            Read(1),
            Read(1),
            Cmd(2, "GEOADD g 13.36 38.11 p"),
            Read(1),
            Read(1),
            Cmd(2, "PFADD hl a"),
            Read(1),
            Read(1),
            Cmd(2, "PFMERGE hl2 hl"),
            Read(1),
            Read(1),
            Cmd(2, "MOVE b1 1"),
            Read(1),
            Read(1),
            Read(1),
            Read(1),
            Cmd(2, "CONFIG SET notify-keyspace-events \"\""),
        ],
    );
}

/// Each command is run by client 2, then client 1 (subscribed to every keyspace channel) logs
/// every event it caused, compared with redis-server's.
fn events_for(name: &str, flags: &str, setup: &[&str], commands: &[&str]) {
    let config = format!("CONFIG SET notify-keyspace-events {flags}");
    let mut steps = vec![Cmd(2, config.as_str())];
    steps.extend(setup.iter().map(|c| Cmd(2, c)));
    steps.push(Cmd(1, "PSUBSCRIBE __key*__:*"));
    for c in commands {
        steps.push(Cmd(2, c));
        steps.push(Drain(1));
    }
    same_as_redis(name, &steps);
}

/// "keymiss" (class m) for reads of missing keys, read commands of every type and the reads
/// inside write commands; never for plain writes or for commands that only peek (OBJECT, TYPE...).
#[test]
fn keymiss_events_match_redis() {
    events_for(
        "keymiss",
        "Em",
        &["SET x 1", "RPUSH l a", "SADD s a", "ZADD z 1 a", "HSET h f v", "SET tmp v PX 1"],
        &[
            "GET a",
            "GET x",
            "EXISTS a x",
            "TYPE a",
            "TTL a",
            "PTTL a",
            "EXPIRETIME a",
            "STRLEN a",
            "GETRANGE a 0 1",
            "MGET a x b",
            "HGET a f",
            "HGET h nof",
            "HGETALL a",
            "HEXISTS a f",
            "HSTRLEN a f",
            "LRANGE a 0 -1",
            "LINDEX a 0",
            "LLEN a",
            "LPOS a x",
            "SCARD a",
            "SMEMBERS a",
            "SISMEMBER a m",
            "SRANDMEMBER a",
            "SINTER s a",
            "SINTERCARD 2 s a",
            "SUNIONSTORE d a b",
            "ZSCORE a m",
            "ZRANGE a 0 -1",
            "ZRANDMEMBER a",
            "ZINTERCARD 1 a",
            "ZUNIONSTORE d 2 a b",
            "PFCOUNT a",
            "GEOPOS a m",
            "GEOSEARCH a FROMLONLAT 0 0 BYRADIUS 1 km",
            "BITCOUNT a",
            "BITPOS a 1",
            "BITFIELD_RO a GET u8 0",
            "OBJECT ENCODING a",
            "OBJECT FREQ a",
            "TOUCH a",
            "SORT a",
            "SORT_RO a",
            "GETDEL a",
            "GETEX a",
            "LPOP a",
            "RPOPLPUSH a b",
            "LMOVE a b LEFT LEFT",
            "LMPOP 1 a LEFT",
            "ZMPOP 1 a MIN",
            "SMOVE a s m",
            "COPY a b",
            "RENAME a b",
            "INCR n",
            "APPEND n2 x",
            "SETRANGE n3 0 x",
            "SET n4 v GET",
            "BITFIELD a GET u8 0",
            "DEL a",
            "UNLINK a",
            "EXPIRE a 10",
            "PERSIST a",
            "HINCRBY h2 f 1",
            "ZINCRBY z2 1 m",
            "GET tmp",
            "EVAL \"return redis.call('get', KEYS[1])\" 1 a",
        ],
    );
}

/// Events fired by commands that pick their key at run time (LMPOP, ZMPOP, GEORADIUS STORE)
/// and by pops served to blocked clients.
#[test]
fn dynamic_and_blocked_pop_events_match_redis() {
    use crate::blocking::Step;
    let setup: Vec<Step> = vec![
        Cmd(2, "CONFIG SET notify-keyspace-events KEA"),
        Cmd(2, "RPUSH l2 a b c"),
        Cmd(2, "ZADD z2 1 a 2 b 3 c"),
        Cmd(2, "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania"),
        Cmd(1, "PSUBSCRIBE __key*__:*"),
    ];
    let mut steps = setup;
    for c in [
        "LMPOP 2 l1 l2 LEFT COUNT 2",
        "LMPOP 2 l1 l2 RIGHT COUNT 5",
        "LMPOP 1 nolist LEFT",
        "ZMPOP 2 z1 z2 MIN COUNT 2",
        "ZMPOP 1 z2 MAX",
        "GEORADIUS g 15 37 200 km STORE gs",
        "GEORADIUS g 15 37 200 km STOREDIST gd",
        "GEORADIUSBYMEMBER g Palermo 300 km STORE gm",
        "GEORADIUS g 0 0 1 km STORE gs",
        "GEOSEARCHSTORE gs2 g FROMLONLAT 15 37 BYRADIUS 200 km",
        // Blocking commands that find their key ready do not block.
        "RPUSH im a",
        "BLPOP im 0",
        "ZADD imz 1 a",
        "BZPOPMAX imz 0",
        "RPUSH im2 a",
        "BLMOVE im2 im3 LEFT RIGHT 0",
        "LMOVE im3 im3 LEFT RIGHT",
    ] {
        steps.push(Cmd(2, c));
        steps.push(Drain(1));
    }
    // Pops served to blocked clients fire the pop (and the push of a move) as the popping
    // command would.
    steps.extend([
        Send(3, "BLPOP q1 0"),
        Blocked(1),
        Cmd(2, "RPUSH q1 x y"),
        Read(3),
        Drain(1),
        Send(3, "BLMOVE q2 q3 RIGHT LEFT 0"),
        Blocked(1),
        Cmd(2, "RPUSH q2 x"),
        Read(3),
        Drain(1),
        Send(3, "BZPOPMIN zq 0"),
        Blocked(1),
        Cmd(2, "ZADD zq 1 a"),
        Read(3),
        Drain(1),
        Send(3, "BLMPOP 0 1 q4 RIGHT COUNT 3"),
        Blocked(1),
        Cmd(2, "LPUSH q4 a b"),
        Read(3),
        Drain(1),
        Send(3, "BZMPOP 0 1 zq2 MAX COUNT 3"),
        Blocked(1),
        Cmd(2, "ZADD zq2 1 a 2 b"),
        Read(3),
        Drain(1),
        Send(3, "BRPOPLPUSH q5 q5 0"),
        Blocked(1),
        Cmd(2, "RPUSH q5 a"),
        Read(3),
        Drain(1),
    ]);
    same_as_redis("dynamic keys", &steps);
}
