//! Prints what a `restore_tar_entries` input restores to (for triage):
//! `cargo run --example show_entries FILE [TAR_OUT]`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: show_entries FILE");
    let data = std::fs::read(&path).unwrap();
    let Some((tar, _)) = cryptbak_fuzz::entries::build(&data, &cryptbak_fuzz::master()) else {
        println!("no entries");
        return;
    };
    if let Some(out) = std::env::args().nth(2) {
        std::fs::write(out, &tar).unwrap();
    }
    let mut a = tar::Archive::new(&tar[..]);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        println!(
            "{:?} {:?} {}",
            e.header().entry_type(),
            e.path().unwrap(),
            e.size()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let r = cryptbak_fuzz::restore_into(&tar, &dir.path().join("d"));
    println!("{r:?}");
}
