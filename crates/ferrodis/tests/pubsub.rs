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
            Cmd(2, "CONFIG SET notify-keyspace-events \"\""),
        ],
    );
}
