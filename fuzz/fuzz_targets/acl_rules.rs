//! Any words as ACL SETUSER rules (and as `user` lines): each rule is applied or refused with a
//! reason, selectors included; the user left can always be described and checked.
//! Run: `cargo +nightly fuzz run acl_rules`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let acl = ferrodis::state::acl::Acl::new(vec![
        ("get".into(), "@read @string @fast"),
        ("set".into(), "@write @string @slow"),
        ("config|get".into(), "@admin @slow @dangerous"),
        ("config|set".into(), "@admin @slow @dangerous"),
        ("publish".into(), "@pubsub @fast"),
    ]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut u = acl.blank("fuzz");
    if let Ok(rules) = ferrodis::state::acl::merge_selectors(&words) {
        for r in &rules {
            let _ = acl.apply(&mut u, r);
        }
    }
    let _ = u.describe();
    let _ = u.key_allowed(b"key", true, false);
    let _ = u.channel_allowed(b"chan", false);
    let line = format!("user fuzz {}", text);
    let _ = acl.load_users(&[(line, std::iter::once("fuzz".to_string()).chain(words.iter().map(|w| w.to_string())).collect())], |_| "fuzz".into());
});
