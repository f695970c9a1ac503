import BrookCore
import BrookProtocol
import BrookRecords
import BrookTxn
import Testing

/// Transaction markers read back from a log: a damaged control batch is no marker, and never a
/// trap (found writing the fuzz target batch, docs/reliability.md).
@Suite struct ControlBatchTests {
    static func marker(commit: Bool = true) -> [UInt8] {
        ControlBatch.build(producerID: ProducerID(7), epoch: ProducerEpoch(1), commit: commit, coordinatorEpoch: 3,
                           timestamp: Timestamp(ms: 1_700_000_000_000))
    }

    static func read(_ bytes: [UInt8]) -> ProducerBatch.Marker? {
        bytes.withUnsafeBytes { b in
            guard let header = RecordBatchHeader.decode(b) else { return nil }
            return ControlBatch.marker(header, batch: b)
        }
    }

    /// `bytes` with `patch` applied and the CRC recomputed (damage a CRC does not catch).
    static func patched(_ bytes: [UInt8], _ patch: (UnsafeMutableRawBufferPointer) -> Void) -> [UInt8] {
        var bytes = bytes
        bytes.withUnsafeMutableBytes { b in
            patch(b)
            RecordBatchPatch.updateChecksum(b)
        }
        return bytes
    }

    @Test func markersReadBack() {
        #expect(Self.read(Self.marker(commit: true)) == .commit)
        #expect(Self.read(Self.marker(commit: false)) == .abort)
    }

    /// A log replay learns each producer's last coordinator epoch from its markers, so a
    /// marker from an older coordinator is refused after a restart too.
    @Test func theCoordinatorEpochReadsBackAndFencesAfterAReplay() {
        let bytes = ControlBatch.build(producerID: ProducerID(7), epoch: ProducerEpoch(1), commit: true, coordinatorEpoch: 70_000,
                                       timestamp: Timestamp(ms: 1_700_000_000_000))
        let read = bytes.withUnsafeBytes { b in RecordBatchHeader.decode(b).flatMap { ControlBatch.markerAndCoordinatorEpoch($0, batch: b) } }
        #expect(read?.marker == .commit && read?.coordinatorEpoch == 70_000)
        var state = ProducerState()
        let header = bytes.withUnsafeBytes { RecordBatchHeader.decode($0)! }
        state.appended(ProducerBatch(header, marker: read?.marker), firstOffset: Offset(5), coordinatorEpoch: read!.coordinatorEpoch, now: 0)
        let older = ProducerBatch(header, marker: .abort)
        guard case .refuse(let code, _) = state.check(older, fromCoordinator: true, coordinatorEpoch: 69_999) else {
            Issue.record("a marker from an older coordinator was taken")
            return
        }
        #expect(code == .transactionCoordinatorFenced)
    }

    /// A record count of -1 made the record walker's `0..<count` trap.
    @Test func negativeRecordCountIsNoMarker() {
        let bytes = Self.patched(Self.marker()) { $0.storeBytes(of: Int32(-1).bigEndian, toByteOffset: 57, as: Int32.self) }
        #expect(Self.read(bytes) == nil)
    }

    /// A batch length shorter than the header made the walker slice backwards.
    @Test func lengthShorterThanTheHeaderIsNoMarker() {
        let bytes = Self.patched(Self.marker()) { $0.storeBytes(of: Int32(40).bigEndian, toByteOffset: 8, as: Int32.self) }
        #expect(Self.read(bytes) == nil)
    }

    @Test func damagedChecksumIsNoMarker() {
        var bytes = Self.marker()
        bytes[bytes.count - 1] ^= 0xFF
        #expect(Self.read(bytes) == nil)
    }
}
