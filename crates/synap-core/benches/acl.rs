//! The permission check on the command path: ns per `User::check` for a user whose rules are checked
//! (`~key:* +@all -@dangerous`), against the ~13 µs a request takes at 50 clients here
//! (scripts/bench-security.sh measures the whole).
//!
//! Run: `cargo bench -p synap-core --bench acl`

use bytes::Bytes;
use divan::Bencher;
use synap_core::acl::User;
use synap_core::command::table;

fn user() -> User {
    let mut u = User::new(Bytes::from_static(b"bench"));
    for op in ["on", "nopass", "~key:*", "+@all", "-@dangerous"] {
        u.apply(op.as_bytes(), &mut |_| String::new()).unwrap();
    }
    u
}

fn line(words: &[&str]) -> Vec<Bytes> {
    words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
}

#[divan::bench]
fn check_get(b: Bencher) {
    let u = user();
    let args = line(&["GET", "key:000000012345"]);
    let row = table::row(&args[0]).unwrap().index;
    b.bench(|| u.check(divan::black_box(row), divan::black_box(&args)));
}

#[divan::bench]
fn check_set(b: Bencher) {
    let u = user();
    let args = line(&["SET", "key:000000012345", "xxx"]);
    let row = table::row(&args[0]).unwrap().index;
    b.bench(|| u.check(divan::black_box(row), divan::black_box(&args)));
}

#[divan::bench]
fn check_unrestricted(b: Bencher) {
    let u = User::default_user();
    let args = line(&["SET", "key:000000012345", "xxx"]);
    let row = table::row(&args[0]).unwrap().index;
    b.bench(|| u.check(divan::black_box(row), divan::black_box(&args)));
}

fn main() {
    divan::main();
}
