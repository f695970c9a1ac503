import BrookCore
import Logging

extension PartitionLog {
    /// Completes a compaction interrupted after its cleaned segment was renamed to `.swap`.
    static func completeSwaps(_ directory: String, config: LogConfig, logger: Logger) throws(StorageError) {
    }
}
