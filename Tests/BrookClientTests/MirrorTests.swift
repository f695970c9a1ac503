import BrookCore
import BrookRecords
import Testing

@testable import BrookClient

@Suite struct MirrorTests {
    static let p = TopicPartition("t", 0)

    @Test func contiguousCopiesTranslateExactly() {
        var syncs = OffsetSyncs()
        for s in 0..<10 { syncs.record(Self.p, source: Offset(Int64(s)), target: Offset(Int64(100 + s))) }
        #expect(syncs.changes[Self.p]?.count == 1, "one delta, one point")
        #expect(syncs.translate(Self.p, Offset(0)) == Offset(100))
        #expect(syncs.translate(Self.p, Offset(5)) == Offset(105))
        #expect(syncs.translate(Self.p, Offset(10)) == Offset(110))
        #expect(syncs.translate(Self.p, Offset(11)) == nil, "not copied yet")
        #expect(syncs.translate(TopicPartition("t", 1), Offset(3)) == nil)
    }

    @Test func aSourceGapTranslatesToTheNextCopy() {
        var syncs = OffsetSyncs()
        for s in 0..<5 { syncs.record(Self.p, source: Offset(Int64(s)), target: Offset(Int64(s))) }
        // Source offsets 5...9 hold no records (transaction markers, compaction).
        for s in 10..<15 { syncs.record(Self.p, source: Offset(Int64(s)), target: Offset(Int64(s - 5))) }
        #expect(syncs.translate(Self.p, Offset(5)) == Offset(5))
        #expect(syncs.translate(Self.p, Offset(7)) == Offset(5), "never past a record not read")
        #expect(syncs.translate(Self.p, Offset(10)) == Offset(5))
        #expect(syncs.translate(Self.p, Offset(11)) == Offset(6))
        #expect(syncs.translate(Self.p, Offset(15)) == Offset(10))
    }

    @Test func theSyncsKeptAreBounded() {
        var syncs = OffsetSyncs()
        var target: Int64 = 0
        for s in stride(from: 0, to: Int64(OffsetSyncs.pointsMax) * 4, by: 2) {
            syncs.record(Self.p, source: Offset(s), target: Offset(target))
            target += 1
        }
        #expect(syncs.changes[Self.p]?.count == OffsetSyncs.pointsMax)
        #expect(syncs.translate(Self.p, Offset(1)) == nil, "older than the syncs kept")
    }

    /// Random source logs with gaps copied to a target that had records before: every
    /// committed offset within what was copied translates to the target offset of the first
    /// copied record at or after it (or just past the last).
    @Test(arguments: 0..<20 as Range<UInt64>)
    func translationsAreTheNextCopiedRecord(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var syncs = OffsetSyncs()
        var copied: [(source: Int64, target: Int64)] = []
        var source = Int64.random(in: 0...50, using: &random)
        var target = Int64.random(in: 0...50, using: &random)
        for _ in 0..<500 {
            syncs.record(Self.p, source: Offset(source), target: Offset(target))
            copied.append((source, target))
            source += Int64.random(in: 0..<10, using: &random) == 0 ? Int64.random(in: 2...6, using: &random) : 1
            target += Int64.random(in: 0..<20, using: &random) == 0 ? Int64.random(in: 2...4, using: &random) : 1
        }
        for committed in copied.first!.source...(copied.last!.source + 1) {
            let next = copied.first { $0.source >= committed }.map(\.target) ?? (copied.last!.target + 1)
            let translated = syncs.translate(Self.p, Offset(committed))
            // Past a target gap the translation may be before the next copy (re-reading what
            // the target holds between), never after it.
            #expect(translated != nil)
            #expect(translated.map { $0.value <= next } ?? false, "committed \(committed): \(String(describing: translated)) past \(next)")
            #expect(translated.map { $0.value > (copied.last { $0.source < committed }?.target ?? -1) } ?? false)
        }
    }

    @Test func progressCheckpointsTheDeliveredPrefixOfEachPartition() {
        var progress = MirrorProgress()
        let q = TopicPartition("t", 1)
        let deliveries = (0..<6).map { _ in Delivery() }
        for i in 0..<3 { progress.add(Self.p, source: Offset(Int64(10 + i)), deliveries[i]) }
        for i in 3..<6 { progress.add(q, source: Offset(Int64(i)), deliveries[i]) }
        #expect(progress.pendingCount == 6)
        func written(_ offset: Int64, _ partition: TopicPartition) -> Result<RecordMetadata, ProduceError> {
            .success(RecordMetadata(topic: "t", partition: partition.partition, offset: Offset(offset), timestamp: Timestamp(ms: 0)))
        }
        deliveries[1].complete(written(51, Self.p))
        deliveries[3].complete(written(7, q))
        var settled = progress.settle()
        #expect(settled.checkpoints == [q: Offset(4)], "partition 0's first record is not written yet")
        #expect(settled.written.count == 1 && settled.failure == nil)
        deliveries[0].complete(written(50, Self.p))
        deliveries[2].complete(written(52, Self.p))
        settled = progress.settle()
        #expect(settled.checkpoints == [Self.p: Offset(13)])
        #expect(settled.written.map { $0.2 } == [Offset(50), Offset(51), Offset(52)])
        deliveries[4].complete(.failure(ProduceError(.recordListTooLarge, "too large")))
        deliveries[5].complete(written(9, q))
        settled = progress.settle()
        #expect(settled.failure?.code == .recordListTooLarge)
        #expect(settled.checkpoints.isEmpty, "nothing past a failed record is checkpointed")
        #expect(progress.pendingCount == 2)
    }
}

@Suite struct MirrorLoopTests {
    static let p = TopicPartition("t", 0)
    typealias Header = SimpleRecord.Header
    static func origin(_ id: String) -> Header { Header(key: Array("brook.mirror.origin".utf8), value: Array(id.utf8)) }

    @Test func aRecordCarriesWhereItBeganAndIsNotCopiedBackThere() {
        let own = Header(key: Array("trace".utf8), value: Array("1".utf8))
        let aToB = MirrorOrigin(source: "A", target: "B")
        // Written on A: marked A on its way to B, its own headers first and kept.
        #expect(aToB.decide([own]) == .copy([own, Self.origin("A")]))
        // Begun on C and copied to A by another mirror: it keeps C on its way on.
        #expect(aToB.decide([Self.origin("C"), own]) == .copy([Self.origin("C"), own]))
        // Begun on B: not copied back.
        #expect(aToB.decide([own, Self.origin("B")]) == .skip)
        // Both ways: each record goes once each way, then stops.
        let bToA = MirrorOrigin(source: "B", target: "A")
        guard case .copy(let onB) = aToB.decide([]) else { Issue.record("copied to B"); return }
        #expect(bToA.decide(onB) == .skip)
        // A ring A -> B -> C -> A stops where it began.
        let bToC = MirrorOrigin(source: "B", target: "C"), cToA = MirrorOrigin(source: "C", target: "A")
        guard case .copy(let onC) = bToC.decide(onB) else { Issue.record("copied to C"); return }
        #expect(cToA.decide(onC) == .skip)
        // An origin header without a value is replaced.
        #expect(aToB.decide([Header(key: Array("brook.mirror.origin".utf8), value: nil), own]) == .copy([own, Self.origin("A")]))
        #expect(aToB.decide([Self.origin(""), own]) == .copy([own, Self.origin("A")]))
        // Ids not known: nothing added, nothing skipped.
        #expect(MirrorOrigin(source: "", target: nil).decide([own]) == .copy([own]))
        #expect(MirrorOrigin(source: nil, target: "").decide([Self.origin("x")]) == .copy([Self.origin("x")]))
    }

    /// Two mirrors both ways: a partition where records of the target's own came back holds
    /// both sides' records, so a group's source offset says nothing of which of the target's
    /// it read: not translated, also after a restart (the mark is in the checkpoint).
    @Test func aPartitionWithRecordsLeftOutIsNotTranslated() {
        var syncs = OffsetSyncs()
        for s in 0..<5 { syncs.record(Self.p, source: Offset(Int64(s)), target: Offset(Int64(10 + s))) }
        #expect(syncs.translate(Self.p, Offset(3)) == Offset(13))
        syncs.markMixed(Self.p)
        #expect(syncs.translate(Self.p, Offset(3)) == nil)
        #expect(syncs.encoded(Self.p) == "mixed")
        var restarted = OffsetSyncs()
        restarted.restore(Self.p, from: syncs.encoded(Self.p)!)
        restarted.record(Self.p, source: Offset(5), target: Offset(15))
        #expect(restarted.translate(Self.p, Offset(5)) == nil && restarted.mixed == [Self.p])
    }

    @Test func recordsLeftOutMoveTheCheckpointInTheirPlace() {
        var progress = MirrorProgress()
        let deliveries = (0..<2).map { _ in Delivery() }
        progress.skip(Self.p, source: Offset(0))
        progress.add(Self.p, source: Offset(1), deliveries[0])
        progress.skip(Self.p, source: Offset(2))
        progress.add(Self.p, source: Offset(3), deliveries[1])
        progress.skip(Self.p, source: Offset(4))
        var settled = progress.settle()
        #expect(settled.checkpoints == [Self.p: Offset(1)], "past the first left out, not past a record not written yet")
        #expect(settled.written.isEmpty && progress.pendingCount == 4)
        func written(_ offset: Int64) -> Result<RecordMetadata, ProduceError> {
            .success(RecordMetadata(topic: "t", partition: 0, offset: Offset(offset), timestamp: Timestamp(ms: 0)))
        }
        deliveries[0].complete(written(70))
        deliveries[1].complete(written(71))
        settled = progress.settle()
        #expect(settled.checkpoints == [Self.p: Offset(5)])
        #expect(settled.written.map { [$0.1.value, $0.2.value] } == [[1, 70], [3, 71]])
        #expect(progress.pendingCount == 0)
    }
}

@Suite struct OffsetSyncsKeptTests {
    static let p = TopicPartition("t", 0)

    /// The syncs a checkpoint carries translate after a restart as they did before it.
    @Test func syncsComeBackFromTheirText() {
        var syncs = OffsetSyncs()
        for s in 0..<5 { syncs.record(Self.p, source: Offset(Int64(s)), target: Offset(Int64(s))) }
        for s in 10..<15 { syncs.record(Self.p, source: Offset(Int64(s)), target: Offset(Int64(s - 5))) }
        let text = syncs.encoded(Self.p)
        #expect(text == "0:0,10:5,14:9")
        var restored = OffsetSyncs()
        restored.restore(Self.p, from: text!)
        for committed in 0...16 {
            #expect(restored.translate(Self.p, Offset(Int64(committed))) == syncs.translate(Self.p, Offset(Int64(committed))))
        }
        // Text that is not syncs is left alone; none for a partition never copied.
        var other = OffsetSyncs()
        other.restore(Self.p, from: "written by someone else")
        #expect(other.last[Self.p] == nil && other.encoded(Self.p) == nil)
    }

    @Test func theTextIsBoundedKeepingTheNewest() {
        var syncs = OffsetSyncs()
        var target: Int64 = 0
        for s in stride(from: 0, to: Int64(4000), by: 2) {
            syncs.record(Self.p, source: Offset(s), target: Offset(target))
            target += 1
        }
        let text = syncs.encoded(Self.p, bytesMax: 300)!
        #expect(text.utf8.count <= 300)
        #expect(text.hasSuffix("3998:1999"), "the last record copied is kept")
        var restored = OffsetSyncs()
        restored.restore(Self.p, from: text)
        #expect(restored.translate(Self.p, Offset(3999)) == syncs.translate(Self.p, Offset(3999)))
    }
}
