//! What the process does to itself before it touches a key: no core dumps and no
//! ptrace by other processes of the same user, so the master key and subkeys in memory
//! never land in a core file (a crash of a root cron job would otherwise leave one
//! readable by whoever can read the crash directory), and as many descriptors as the
//! hard limit allows, since directory handles are held along every path being walked.

/// Best effort: a failure here is not worth refusing to run for, and on Linux these
/// calls do not fail for an unprivileged process.
pub fn harden() {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let zero = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, zero);
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if nofile.current < nofile.maximum {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: nofile.maximum,
                maximum: nofile.maximum,
            },
        );
    }
}
