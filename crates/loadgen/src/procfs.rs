//! What Linux tells about a process in `/proc`: resident memory and CPU time.

/// `VmRSS` from the text of `/proc/PID/status`, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// User plus system CPU time, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The second field, the command name, is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted from the last `)`: utime and stime are
/// fields 14 and 15 of the line, the 12th and 13th after the name.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// The resident memory of process `pid`, in bytes.
///
/// # Errors
///
/// When `/proc/PID/status` cannot be read or has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    parse_vm_rss_kib(&status)
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{path}: no VmRSS line"))
}

/// The CPU time process `pid` has used so far, in seconds.
///
/// # Errors
///
/// When `/proc/PID/stat` cannot be read or parsed.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| format!("{path}: cannot parse"))?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 {
        per_second as f64
    } else {
        100.0
    };
    Ok(ticks as f64 / per_second)
}

/// The CPU time a set of server processes (a server, or instances and their Redis)
/// used from [`ServerCpu::start`] on: the server's own cost of what the load
/// generator measures in that span, read from `/proc/PID/stat` at both ends.
#[derive(Debug, Clone)]
pub struct ServerCpu {
    pids: Vec<u32>,
    before: f64,
}

impl ServerCpu {
    /// Starts counting the CPU time of `pids` (none: counts nothing).
    ///
    /// # Errors
    ///
    /// When a process's `/proc/PID/stat` cannot be read.
    pub fn start(pids: &[u32]) -> Result<ServerCpu, String> {
        Ok(ServerCpu {
            pids: pids.to_vec(),
            before: total_cpu_seconds(pids)?,
        })
    }

    /// The seconds used since the start, all processes together, or `None` when no
    /// process was given.
    ///
    /// # Errors
    ///
    /// When a process's `/proc/PID/stat` cannot be read (it exited).
    pub fn seconds(&self) -> Result<Option<f64>, String> {
        if self.pids.is_empty() {
            return Ok(None);
        }
        Ok(Some(total_cpu_seconds(&self.pids)? - self.before))
    }
}

fn total_cpu_seconds(pids: &[u32]) -> Result<f64, String> {
    pids.iter().map(|pid| cpu_seconds(*pid)).sum()
}

/// The CPU time this process has used so far, in seconds, to the nanosecond
/// (`/proc/PID/stat` counts in ticks of 10 ms, too coarse for a short run).
///
/// # Errors
///
/// When the clock cannot be read.
pub fn own_cpu_seconds() -> Result<f64, String> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on our stack.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut time) };
    if status == 0 {
        Ok(time.tv_sec as f64 + time.tv_nsec as f64 / 1e9)
    } else {
        Err(format!(
            "clock_gettime(CLOCK_PROCESS_CPUTIME_ID): {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = own_cpu_seconds().unwrap();
        let mut sum = 0_u64;
        for value in 0..20_000_000_u64 {
            sum = sum.wrapping_add(std::hint::black_box(value));
        }
        std::hint::black_box(sum);
        let after = own_cpu_seconds().unwrap();
        assert!(after > before, "{before} -> {after}");
    }

    #[test]
    fn server_cpu_counts_the_given_processes_only() {
        assert_eq!(ServerCpu::start(&[]).unwrap().seconds().unwrap(), None);
        let meter = ServerCpu::start(&[std::process::id()]).unwrap();
        let mut sum = 0_u64;
        // At least two clock ticks of work (/proc counts in ticks of 10 ms).
        let until = std::time::Instant::now() + std::time::Duration::from_millis(60);
        while std::time::Instant::now() < until {
            sum = sum.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(sum);
        let used = meter.seconds().unwrap().unwrap();
        assert!(used > 0.0, "{used}");
        assert!(ServerCpu::start(&[u32::MAX]).is_err(), "no such process");
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\taxum\nVmPeak:\t  20000 kB\nVmRSS:\t    5164 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss_kib(status), Some(5164));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_name_with_spaces_and_parentheses() {
        let stat = "1234 (my (odd) server) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 2 0 100 200000 1000";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("1234 (short) S 1"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }
}
