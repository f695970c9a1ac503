import BrookProtocol
import BrookStorage

/// Storage failures as the Kafka error codes clients know.
enum ErrorMapping {
    static func code(for error: StorageError) -> ErrorCode {
        switch error {
        case .invalidBatch(_, .compression(_, .unavailable)): .unsupportedCompressionType
        case .invalidBatch: .corruptMessage
        case .batchTooLarge: .messageTooLarge
        case .missingKeyOnCompactedTopic, .controlBatchFromClient: .invalidRecord
        case .timestampOutOfRange: .invalidTimestamp
        case .offsetOutOfRange: .offsetOutOfRange
        case .invalidArgument: .invalidRequest
        case .invalidConfig: .invalidConfig
        case .io, .diskFull, .corruptSegment, .corruptIndex, .corruptCheckpoint, .closed: .kafkaStorageError
        }
    }
}
