import BrookProtocol
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// DescribeLogDirs: each log directory with its partitions' sizes and the disk's space.
struct DescribeLogDirsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...4

    func handle(_ request: DescribeLogDirsRequest, version: Int16, context: RequestContext) -> Reply<DescribeLogDirsResponse> {
        typealias Result = DescribeLogDirsResponse.DescribeLogDirsResult
        let wanted: [String: Set<Int32>]? = request.topics.map { topics in
            Dictionary(topics.map { ($0.topic, Set($0.partitions)) }) { $0.union($1) }
        }
        let topics = context.broker.topics.allTopics()
        let results = context.broker.config.logDirs.map { dir -> Result in
            var result = Result(errorCode: 0, logDir: dir)
            for topic in topics {
                let partitions = topic.hosted.filter { p in
                    p.logDirectory.hasPrefix(dir + "/") && (wanted.map { $0[topic.name]?.contains(p.index) ?? false } ?? true)
                }
                guard !partitions.isEmpty else { continue }
                result.topics.append(.init(name: topic.name, partitions: partitions.map { p in
                    let size = (try? p.withLog { Int64($0.sizeBytes) }) ?? 0
                    return .init(partitionIndex: p.index, partitionSize: size, offsetLag: 0, isFutureKey: false)
                }))
            }
            var stats = statvfs()
            if statvfs(dir, &stats) == 0 {
                result.totalBytes = Int64(stats.f_blocks) * Int64(stats.f_frsize)
                result.usableBytes = Int64(stats.f_bavail) * Int64(stats.f_frsize)
            }
            return result
        }
        return .now(DescribeLogDirsResponse(throttleTimeMs: 0, errorCode: 0, results: results))
    }
}
