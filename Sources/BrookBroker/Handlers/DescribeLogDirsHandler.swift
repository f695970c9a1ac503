import BrookProtocol
import BrookStorage
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// DescribeLogDirs: each log directory with its partitions' sizes and the disk's space; a
/// replica's copy that a move between log dirs is making is listed in its new dir as the
/// future replica (isFutureKey), with the bytes copied so far.
struct DescribeLogDirsHandler: ApiHandler {
    let versions: ClosedRange<Int16> = 1...4

    func handle(_ request: DescribeLogDirsRequest, version: Int16, context: RequestContext) -> Reply<DescribeLogDirsResponse> {
        typealias Result = DescribeLogDirsResponse.DescribeLogDirsResult
        let wanted: [String: Set<Int32>]? = request.topics.map { topics in
            Dictionary(topics.map { ($0.topic, Set($0.partitions)) }) { $0.union($1) }
        }
        let topics = context.broker.topics.allTopics()
        let registry = context.broker.topics
        let underWay = registry.moves.underWay
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
            for (name, index) in Self.futures(underWay, in: dir, registry: registry)
            where wanted.map({ $0[name]?.contains(index) ?? false }) ?? true {
                let copy = dir + "/\(name)-\(index)" + TopicRegistry.futureSuffix
                let size = ((try? FileSystem.list(copy)) ?? []).reduce(Int64(0)) { sum, file in
                    sum + (((try? FileSystem.state(copy + "/" + file)) ?? nil)?.size ?? 0)
                }
                let entry = DescribeLogDirsResponse.DescribeLogDirsResult.DescribeLogDirsTopic.DescribeLogDirsPartition(
                    partitionIndex: index, partitionSize: size, offsetLag: 0, isFutureKey: true)
                if let i = result.topics.firstIndex(where: { $0.name == name }) {
                    result.topics[i].partitions.append(entry)
                } else {
                    result.topics.append(.init(name: name, partitions: [entry]))
                }
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

    /// The replicas being moved into `dir` whose copy exists there.
    static func futures(_ underWay: [String: String], in dir: String, registry: TopicRegistry) -> [(String, Int32)] {
        underWay.compactMap { partition, target -> (String, Int32)? in
            guard target == dir, let dash = partition.lastIndex(of: "-"), let index = Int32(partition[partition.index(after: dash)...]),
                  FileSystem.exists(dir + "/" + partition + TopicRegistry.futureSuffix) else { return nil }
            return (String(partition[..<dash]), index)
        }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    /// Versions 3 and later carry the error; earlier ones get no directories, as from Kafka.
    func refused(_ request: DescribeLogDirsRequest, version: Int16, code: ErrorCode, message: String) -> DescribeLogDirsResponse? {
        DescribeLogDirsResponse(errorCode: code.rawValue)
    }
}
