#if canImport(Glibc)
import Glibc
#endif

/// A process's CPU time, memory and open files, from Linux's /proc (nil elsewhere or when
/// /proc cannot be read): Prometheus's standard `process_*` metrics, and what `brook perf`
/// reads of a broker it measures.
public struct ProcessStats: Sendable {
    public var cpuSeconds: Double
    public var residentBytes: Double
    public var virtualBytes: Double
    public var openFds: Double
    /// This process's limit (0 for another process).
    public var maxFds: Double
    public var startTimeSeconds: Double

    /// This process's (`pid` nil) or another's.
    public static func read(pid: Int32? = nil) -> ProcessStats? {
        #if os(Linux)
        let process = pid.map(String.init) ?? "self"
        // /proc/PID/stat: the command name (field 2) is in parentheses and may hold spaces;
        // the fields after its closing parenthesis start at field 3 (state).
        guard let stat = readSmallFile("/proc/\(process)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Field n is fields[n - 3]: utime 14, stime 15, starttime 22, vsize 23, rss 24 (pages).
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]),
              let startTicks = Double(fields[19]), let vsize = Double(fields[20]), let rssPages = Double(fields[21]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        guard ticks > 0 else { return nil }
        var bootTime = 0.0
        if let text = readSmallFile("/proc/stat"),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
           let value = Double(line.dropFirst(6)) { bootTime = value }
        var limit = rlimit()
        let maxFds = pid == nil && getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Double(limit.rlim_cur) : 0
        return ProcessStats(cpuSeconds: (utime + stime) / ticks, residentBytes: rssPages * pageSize, virtualBytes: vsize,
                            openFds: Double(countOpenFiles(process)), maxFds: maxFds, startTimeSeconds: bootTime + startTicks / ticks)
        #else
        return nil
        #endif
    }

    /// A /proc file's text (they are small; at most 64 KiB is read).
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 65_536)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: bytes[0..<total], as: UTF8.self)
    }

    static func countOpenFiles(_ process: String) -> Int {
        guard let dir = opendir("/proc/\(process)/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(2)) }
            if name.first != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count - 1)  // the directory's own descriptor, open while it is read
    }
}
