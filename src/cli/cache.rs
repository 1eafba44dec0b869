//! The metadata cache of a remote location on this machine ([`MetaCache`]): read by
//! every command that lists the location, written only by the export that changed it.

use cryptbak::remote::cache::MetaCache;
use cryptbak::remote::Store;

use super::report;

/// The largest metadata cache read (about 200 bytes an object: 2.5 million objects).
const MAX_CACHE: usize = 512 << 20;

/// The file name of a location's metadata cache: a hash of its id, so that neither
/// bucket nor prefix appears in a file name.
fn cache_name(id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(id.as_bytes());
    let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("remote-{hex}.json")
}

/// What this machine last learnt of `store`'s objects (`None` where the store keeps
/// its metadata in the listing, as SFTP does). A missing or unreadable cache is an
/// empty one: it costs only the HEADs.
pub(crate) fn load(store: &Store) -> Option<MetaCache> {
    store.cache_id().map(|id| {
        let bytes = cryptbak::fs::cache::read(&cache_name(id), MAX_CACHE).unwrap_or_default();
        MetaCache::from_bytes(id, &bytes)
    })
}

/// Keep what `updated` makes of the location's cache (given its id) for the next run;
/// a failure is a warning (the next run does the HEADs).
pub(crate) fn save(
    store: &Store,
    updated: impl FnOnce(&str) -> cryptbak::Result<Option<MetaCache>>,
) {
    let Some(id) = store.cache_id() else { return };
    match updated(id) {
        Ok(Some(c)) => {
            if let Err(e) = cryptbak::fs::cache::write(&cache_name(id), &c.to_bytes()) {
                report::warn(&format!(
                    "cannot keep the metadata cache ({}); the next run reads each object's metadata again",
                    cryptbak::error::in_words(&e)
                ));
            }
        }
        Ok(None) => {}
        Err(e) => report::warn(&format!(
            "{}; the next run reads each object's metadata again",
            report::sanitize(&e.to_string())
        )),
    }
}
