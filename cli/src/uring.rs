//! The start-up check that this process may set up an io_uring, which the engine's cores run
//! on. Without it the cores fail inside glommio and the engine reports only that a core
//! stopped; this check names the cause and the fix first (a container's seccomp profile, a
//! sysctl, an old kernel).

use std::io;

/// Entries of the probe's ring: the smallest useful one; it is closed at once.
const PROBE_RING_ENTRIES: u32 = 2;

/// What the machine says about io_uring besides the error: both from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Environment {
    /// `kernel.io_uring_disabled` (0 allowed, 1 only for `kernel.io_uring_group`, 2 never);
    /// `None` where the kernel has no such sysctl (before 6.6).
    pub io_uring_disabled: Option<u32>,
    /// This process runs under a seccomp filter (`Seccomp: 2` in /proc/self/status), as
    /// containers do.
    pub seccomp_filter: bool,
}

impl Environment {
    /// Reads the sysctl and this process's seccomp mode.
    pub fn read() -> Environment {
        let io_uring_disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .ok()
            .and_then(|text| text.trim().parse().ok());
        let seccomp_filter = std::fs::read_to_string("/proc/self/status")
            .map(|status| {
                status
                    .lines()
                    .any(|line| line.split_whitespace().eq(["Seccomp:", "2"]))
            })
            .unwrap_or(false);
        Environment {
            io_uring_disabled,
            seccomp_filter,
        }
    }
}

/// Sets up an io_uring and closes it: the `io_uring_setup` call the engine's cores make.
pub fn probe() -> io::Result<()> {
    io_uring::IoUring::new(PROBE_RING_ENTRIES).map(drop)
}

/// Succeeds when an io_uring can be set up here; otherwise the reason and the fix.
pub fn check() -> anyhow::Result<()> {
    probe().map_err(|error| anyhow::anyhow!("{}", explain(&error, Environment::read())))
}

/// The message for a failed `io_uring_setup`, from its errno and the machine's settings.
pub fn explain(error: &io::Error, environment: Environment) -> String {
    let head = format!("sluice needs io_uring, and io_uring_setup failed here ({error})");
    let fix = match (error.raw_os_error(), environment.io_uring_disabled) {
        (Some(libc::EPERM), Some(disabled)) if disabled != 0 => format!(
            "io_uring is disabled on this machine (sysctl kernel.io_uring_disabled = {disabled}). \
             As root, allow it: sysctl -w kernel.io_uring_disabled=0"
        ),
        (Some(libc::EPERM), _) => format!(
            "{} Docker's and containerd's default seccomp profiles block io_uring: run the \
             container with --security-opt seccomp=unconfined, or with a seccomp profile that \
             allows io_uring_setup, io_uring_enter and io_uring_register (Kubernetes: the pod's \
             securityContext.seccompProfile). Outside a container, check that sysctl \
             kernel.io_uring_disabled is 0 (sysctl -w kernel.io_uring_disabled=0 as root).",
            if environment.seccomp_filter {
                "This process runs under a seccomp filter, which refuses the call."
            } else {
                "The call was refused."
            }
        ),
        (Some(libc::ENOSYS), _) => "This kernel has no io_uring: Sluice needs Linux 5.8 or \
             later built with CONFIG_IO_URING (some sandboxes, such as gVisor, do not provide \
             it either)."
            .to_owned(),
        (Some(libc::ENOMEM), _) => "The kernel could not lock memory for the ring: raise the \
             locked-memory limit (ulimit -l; kernels before 5.12 count io_uring rings there)."
            .to_owned(),
        _ => "Sluice runs on Linux with io_uring (kernel 5.8 or later).".to_owned(),
    };
    format!("{head}.\n{fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn an_io_uring_can_be_set_up_on_this_machine() {
        // Everything else Sluice runs needs it too; the failure names the reason.
        if let Err(error) = probe() {
            panic!("{}", explain(&error, Environment::read()));
        }
        check().unwrap();
    }

    #[test]
    fn a_seccomp_refusal_names_the_container_fix_and_the_three_calls() {
        let environment = Environment {
            io_uring_disabled: Some(0),
            seccomp_filter: true,
        };
        let message = explain(&errno(libc::EPERM), environment);
        assert!(message.contains("under a seccomp filter"), "{message}");
        assert!(
            message.contains("--security-opt seccomp=unconfined"),
            "{message}"
        );
        for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            assert!(message.contains(call), "{message}");
        }
        assert!(message.contains("Operation not permitted"), "{message}");
    }

    #[test]
    fn a_refusal_with_the_sysctl_set_names_the_sysctl_not_seccomp() {
        let environment = Environment {
            io_uring_disabled: Some(2),
            seccomp_filter: false,
        };
        let message = explain(&errno(libc::EPERM), environment);
        assert!(
            message.contains("kernel.io_uring_disabled = 2"),
            "{message}"
        );
        assert!(
            message.contains("sysctl -w kernel.io_uring_disabled=0"),
            "{message}"
        );
        assert!(!message.contains("seccomp"), "{message}");
    }

    #[test]
    fn a_refusal_without_a_filter_or_sysctl_still_names_both_fixes() {
        let message = explain(&errno(libc::EPERM), Environment::default());
        assert!(message.contains("The call was refused."), "{message}");
        assert!(message.contains("seccomp=unconfined"), "{message}");
        assert!(message.contains("kernel.io_uring_disabled"), "{message}");
    }

    #[test]
    fn a_kernel_without_io_uring_is_told_the_version_it_needs() {
        let message = explain(&errno(libc::ENOSYS), Environment::default());
        assert!(message.contains("Linux 5.8 or later"), "{message}");
        assert!(message.contains("CONFIG_IO_URING"), "{message}");
    }

    #[test]
    fn a_memory_failure_names_the_locked_memory_limit() {
        let message = explain(&errno(libc::ENOMEM), Environment::default());
        assert!(message.contains("ulimit -l"), "{message}");
    }
}
