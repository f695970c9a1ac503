// What a program that imports BrookClient names in its code without importing Brook's inner
// modules: offsets, partitions and ids (BrookCore), and the records it reads and writes, whose
// decoding lives beside the batch format in BrookRecords (so the fuzzing build and the broker
// need not build the client).
@_exported import BrookCore
@_exported import struct BrookRecords.ConsumedRecord
@_exported import struct BrookRecords.FetchedRecords
@_exported import struct BrookRecords.SimpleRecord
@_exported import enum BrookSecurity.SaslMechanism
@_exported import enum BrookSecurity.ScramMechanism
@_exported import struct BrookProtocol.ErrorCode
@_exported import enum BrookProtocol.FeatureUpgradeType
@_exported import struct BrookProtocol.KafkaUUID
