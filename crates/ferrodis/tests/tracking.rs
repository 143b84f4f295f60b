//! Client-side caching (CLIENT TRACKING), reply for reply against redis-server 7.0.15: the
//! invalidations a tracking client gets (RESP3 pushes on its own connection, or RESP2 messages
//! on `__redis__:invalidate` of the connection it redirects to), in the order Redis sends them
//! relative to replies, for every mode (default, BCAST, NOLOOP, OPTIN, OPTOUT) and every way a
//! key changes (writes, transactions, scripts, expiry, flushes, a served blocked client).

use crate::blocking::{same_as_redis, Step::*};

#[test]
fn a_resp2_client_redirects_invalidations_to_a_subscriber() {
    same_as_redis(
        "tracking-redirect",
        &[
            Cmd(1, "SUBSCRIBE __redis__:invalidate"),
            Cmd(2, "CLIENT TRACKING on REDIRECT $ID1"),
            Cmd(3, "SET a 1"),
            Cmd(2, "GET a"),
            // A key read while missing is tracked too.
            Cmd(2, "GET b"),
            Cmd(3, "SET b 1"),
            Read(1),
            Cmd(3, "INCR a"),
            Read(1),
            // Once invalidated, a key is no longer tracked until read again.
            Cmd(3, "INCR a"),
            Drain(1),
            Cmd(2, "MGET x y"),
            Cmd(3, "MSET x 1 y 2"),
            Read(1),
            Read(1),
            // Off: nothing more.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "GET a"),
            Cmd(3, "SET a 2"),
            Drain(1),
            // Broadcast: one message per prefix, for keys nobody read.
            Cmd(2, "CLIENT TRACKING on BCAST REDIRECT $ID1 PREFIX a: PREFIX b:"),
            Cmd(3, "MULTI"),
            Cmd(3, "INCR a:1"),
            Cmd(3, "INCR a:2"),
            Cmd(3, "INCR b:1"),
            Cmd(3, "INCR c:1"),
            Cmd(3, "EXEC"),
            Read(1),
            Read(1),
            Cmd(2, "CLIENT TRACKING on BCAST REDIRECT $ID1 PREFIX c:"),
            Cmd(3, "SET c:9 x"),
            Read(1),
            Cmd(2, "CLIENT TRACKING on BCAST PREFIX a"),
            Cmd(2, "CLIENT TRACKING on BCAST PREFIX zz PREFIX z"),
            Cmd(2, "CLIENT TRACKING on"),
            // NOLOOP in BCAST mode: not the keys the client changed itself.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on BCAST REDIRECT $ID1 NOLOOP"),
            Cmd(3, "SET other 1"),
            Read(1),
            Cmd(2, "SET mine 1"),
            Cmd(3, "SET other 2"),
            Read(1),
            Drain(1),
            // A flush invalidates everything at once (a null).
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on REDIRECT $ID1"),
            Cmd(2, "GET a"),
            Cmd(3, "FLUSHALL"),
            Read(1),
            Cmd(2, "CLIENT TRACKING off"),
        ],
    );
}

#[test]
fn option_errors_are_redis_errors() {
    same_as_redis(
        "tracking-errors",
        &[
            Cmd(2, "CLIENT TRACKING on PREFIX x"),
            Cmd(2, "CLIENT TRACKING on OPTIN OPTOUT"),
            Cmd(2, "CLIENT TRACKING on BCAST OPTIN"),
            Cmd(2, "CLIENT TRACKING maybe"),
            Cmd(2, "CLIENT TRACKING on REDIRECT 99999999"),
            Cmd(2, "CLIENT TRACKING on REDIRECT x"),
            Cmd(2, "CLIENT TRACKING on REDIRECT $ID1 REDIRECT $ID1"),
            Cmd(2, "CLIENT TRACKING on NOSUCHOPTION"),
            Cmd(2, "CLIENT TRACKING on BCAST PREFIX FOOBAR PREFIX FOO"),
            Cmd(2, "CLIENT CACHING yes"),
            Cmd(2, "CLIENT GETREDIR"),
            Cmd(2, "CLIENT TRACKINGINFO"),
            Cmd(2, "CLIENT TRACKING on OPTIN"),
            Cmd(2, "CLIENT TRACKING on OPTOUT"),
            Cmd(2, "CLIENT CACHING no"),
            Cmd(2, "CLIENT CACHING maybe"),
            Cmd(2, "CLIENT GETREDIR"),
            Cmd(2, "CLIENT TRACKING"),
            Cmd(2, "CLIENT TRACKINGINFO extra"),
        ],
    );
}

#[test]
fn a_resp3_client_gets_pushes_after_the_replies_that_caused_them() {
    same_as_redis(
        "tracking-resp3",
        &[
            Quiet(2, "HELLO 3"),
            Cmd(2, "CLIENT TRACKING on"),
            Cmd(2, "CLIENT TRACKINGINFO"),
            Cmd(2, "CLIENT GETREDIR"),
            Cmd(3, "SET k 1"),
            Cmd(2, "GET k"),
            Cmd(3, "SET k 2"),
            Read(2),
            // The client's own write: the reply first, then the push.
            Cmd(2, "HSET h f 1"),
            Cmd(2, "HGET h f"),
            Cmd(2, "HDEL h f"),
            Read(2),
            Cmd(2, "MSET a 1 b 2"),
            Cmd(2, "GET a"),
            Cmd(2, "MULTI"),
            Cmd(2, "INCR a"),
            Cmd(2, "GET b"),
            Cmd(2, "EXEC"),
            Read(2),
            // NOLOOP: not for its own writes.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on NOLOOP"),
            Cmd(2, "CLIENT TRACKINGINFO"),
            Cmd(2, "GET a"),
            Cmd(2, "SET a 5"),
            Cmd(2, "PING"),
            // OPTIN: only the command after CLIENT CACHING yes.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on OPTIN"),
            Cmd(2, "GET a"),
            Cmd(3, "SET a 6"),
            Cmd(2, "PING"),
            Cmd(2, "CLIENT CACHING yes"),
            Cmd(2, "CLIENT TRACKINGINFO"),
            Cmd(2, "GET a"),
            Cmd(2, "CLIENT TRACKINGINFO"),
            Cmd(3, "SET a 7"),
            Read(2),
            // OPTOUT: all but the command after CLIENT CACHING no.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on OPTOUT"),
            Cmd(2, "CLIENT CACHING no"),
            Cmd(2, "GET a"),
            Cmd(3, "SET a 8"),
            Cmd(2, "PING"),
            Cmd(2, "GET a"),
            Cmd(3, "SET a 9"),
            Read(2),
            // A script that reads tracks its declared keys; one that only writes tracks nothing.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on"),
            Cmd(2, "EVAL \"redis.call('set', 'zz', 'x')\" 2 k1 k2"),
            Cmd(3, "MSET k1 1 k2 2"),
            Cmd(2, "PING"),
            Cmd(2, "EVAL \"return redis.call('get', 'zz')\" 2 k1 k2"),
            Cmd(3, "MSET k1 2 k2 3"),
            Read(2),
            Read(2),
            Cmd(2, "EVAL_RO \"return redis.call('ping')\" 1 k1"),
            Cmd(3, "SET k1 4"),
            Cmd(2, "PING"),
            // A flush inside a transaction: the null follows EXEC's reply.
            Cmd(2, "GET a"),
            Cmd(2, "MULTI"),
            Cmd(2, "FLUSHDB"),
            Cmd(2, "EXEC"),
            Read(2),
            // Expiry invalidates.
            Cmd(3, "SET e 1 PX 30"),
            Cmd(2, "GET e"),
            Gone(3, "e"),
            Read(2),
            // Broadcast to itself: after the reply.
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKING on BCAST PREFIX p"),
            Cmd(2, "CLIENT TRACKINGINFO"),
            Cmd(3, "SET p1 x"),
            Read(2),
            Cmd(2, "SET p2 y"),
            Read(2),
            Cmd(2, "SET q1 y"),
            Cmd(2, "CLIENT TRACKING off"),
            Cmd(2, "CLIENT TRACKINGINFO"),
        ],
    );
}

#[test]
fn a_served_blocked_client_gets_its_reply_before_the_push() {
    same_as_redis(
        "tracking-blocked",
        &[
            Quiet(2, "HELLO 3"),
            Cmd(2, "CLIENT TRACKING on"),
            Cmd(3, "RPUSH l2 a"),
            Cmd(2, "LRANGE l2 0 -1"),
            Send(2, "BLMOVE l1 l2 LEFT LEFT 0"),
            Blocked(1),
            Cmd(3, "RPUSH l1 foo"),
            Read(2),
            Read(2),
            Cmd(2, "PING"),
        ],
    );
}
