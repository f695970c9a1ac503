import BrookCluster
import BrookCore
import BrookProtocol
import BrookStorage
import BrookTxn
import NIOCore

/// The transaction coordinator in a cluster, as in Kafka: a transactional id is coordinated by
/// the leader of its `__transaction_state` partition, which loads the partition's states when
/// it comes to lead it and drops them when it stops. Its state writes are answered once the
/// ISR has them. The markers that end a transaction go to each partition's leader (over the
/// network with WriteTxnMarkers, or here when this broker leads it), and are sent again until
/// every partition has taken them; only then is the transaction complete.
extension TxnService {
    /// nil when this broker coordinates `transactionalID` now (always on a single node); else
    /// the error to answer (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while loading).
    func notCoordinating(_ transactionalID: String, _ s: borrowing State) -> ErrorCode? {
        guard isCluster else { return nil }
        guard let count = stateTopic.partitionCountNow else { return .notCoordinator }
        let index = InternalTopic.partitionIndex(for: transactionalID, partitions: count)
        if s.loading.contains(index) { return .coordinatorLoadInProgress }
        return s.owned[index] == nil ? .notCoordinator : nil
    }

    /// The coordinator epoch for `transactionalID` while this broker coordinates it.
    func coordinatorEpoch(of transactionalID: String) -> LeaderEpoch? {
        guard isCluster else { return LeaderEpoch(0) }
        guard let count = stateTopic.partitionCountNow else { return nil }
        let index = InternalTopic.partitionIndex(for: transactionalID, partitions: count)
        return state.withLock { $0.loading.contains(index) ? nil : $0.owned[index] }
    }

    // MARK: leadership

    /// This broker came to lead `__transaction_state` partition `index` in `epoch`: its states
    /// are read from the partition's log (to its end, which is this leader's) and the
    /// transactions it left half-ended are finished.
    public func becameLeader(ofPartition index: Int, epoch: LeaderEpoch) {
        state.withLock { s in
            dropStates(ofPartition: index, &s)
            s.loading.insert(index)
        }
        var records: [(String, TxnMetadata?)] = []
        do {
            try stateTopic.forEachBatch(logger: logger, only: index, toLogEnd: true) { partition, header, batch in
                records += Self.decode(header, batch, partition: partition, logger: logger)
            }
        } catch {
            logger.error("cannot load transactions of \(Self.stateTopic)-\(index): \(error)")
            state.withLock { _ = $0.loading.remove(index) }
            return
        }
        let count = stateTopic.partitionCountNow ?? 1
        let plans = state.withLock { s -> [MarkerPlan] in
            for (id, m) in records { s.coordinator.replay(id, m) }
            s.loading.remove(index)
            s.owned[index] = epoch
            return s.coordinator.unfinished.filter { InternalTopic.partitionIndex(for: $0.transactionalID, partitions: count) == index }
        }
        logger.info("coordinating the transactions of \(Self.stateTopic)-\(index) in epoch \(epoch): \(records.count) records loaded, \(plans.count) to finish")
        for plan in plans { complete(plan, after: []) }
    }

    /// This broker no longer leads `__transaction_state` partition `index`: its transactional ids
    /// are forgotten here (the new leader has them), and markers still being sent stop.
    public func stoppedLeading(partition index: Int) {
        let had = state.withLock { s -> Bool in
            defer {
                s.owned[index] = nil
                s.loading.remove(index)
                dropStates(ofPartition: index, &s)
            }
            return s.owned[index] != nil
        }
        if had { logger.info("no longer coordinating the transactions of \(Self.stateTopic)-\(index)") }
    }

    func dropStates(ofPartition index: Int, _ s: inout State) {
        guard let count = stateTopic.partitionCountNow else { return }
        for id in s.coordinator.txns.keys where InternalTopic.partitionIndex(for: id, partitions: count) == index {
            s.coordinator.replay(id, nil)
            // A delivery still running sees the change of epoch and stops; a new one may start.
            s.delivering[id] = nil
        }
    }

    // MARK: markers

    /// Ends a prepared transaction: on a single node its markers and completion are written now;
    /// in a cluster they are delivered on their own once the prepared state (`written`) has
    /// reached the ISR.
    func complete(_ plan: MarkerPlan, after written: [InternalWrite]) {
        guard isCluster else { return finish(plan) }
        let id = plan.transactionalID
        let token = state.withLock { s -> UInt64? in
            guard s.delivering[id] == nil else { return nil }
            s.deliveries += 1
            s.delivering[id] = s.deliveries
            return s.deliveries
        }
        guard let token else { return }
        Task {
            await deliver(plan, after: written, token: token)
            state.withLock { s in if s.delivering[id] == token { s.delivering[id] = nil } }
        }
    }

    /// Every prepared transaction this broker coordinates has a delivery running: one that
    /// stopped early (its state did not reach the ISR in time, a write failed) starts again.
    func resumeDeliveries() {
        guard let count = stateTopic.partitionCountNow else { return }
        let plans = state.withLock { s in
            s.coordinator.unfinished.filter { plan in
                s.delivering[plan.transactionalID] == nil
                    && s.owned[InternalTopic.partitionIndex(for: plan.transactionalID, partitions: count)] != nil
            }
        }
        for plan in plans { complete(plan, after: []) }
    }

    /// The delivery of `plan` may go on: this broker still coordinates its transaction in
    /// `epoch`, and the transaction is still the prepared one (not finished by another delivery).
    func stillDelivering(_ plan: MarkerPlan, epoch: LeaderEpoch) -> Bool {
        guard coordinatorEpoch(of: plan.transactionalID) == epoch else { return false }
        return state.withLock { $0.coordinator.metadata(plan.transactionalID) == plan.prepared }
    }

    /// Writes one marker to a partition this broker leads (WriteTxnMarkers, or a coordinator's
    /// own delivery): the code, and the write the ISR must take before it counts.
    func writeMarker(_ target: TxnPartition, producerID: ProducerID, epoch: ProducerEpoch, commit: Bool,
                     coordinatorEpoch: LeaderEpoch) -> (ErrorCode, InternalWrite?) {
        let found = topics.lookup(target.topic, target.partition)
        guard case .hosted(let partition) = found else { return (found.absentCode, nil) }
        guard partition.isLeader else { return (.notLeaderOrFollower, nil) }
        let time = clock.now()
        let end: Offset
        do {
            end = try partition.appendMarker(producerID: producerID, epoch: epoch, commit: commit,
                                             coordinatorEpoch: coordinatorEpoch.value, now: time).end
        } catch {
            switch error {
            case .producer(let code, let message):
                logger.info("marker for producer \(producerID) to \(target) refused: \(message)")
                return (code, nil)
            case .storage(let e):
                logger.error("marker for producer \(producerID) to \(target) failed: \(e)")
                return (.kafkaStorageError, nil)
            }
        }
        if target.topic == GroupService.offsetsTopic {
            groups.completeTransaction(producerID: producerID, commit: commit)
        }
        return (.none, InternalWrite(partition: partition, end: end))
    }

    /// Sends a transaction's markers until every partition has them (or is gone), then writes
    /// its completion. Stops when this broker no longer coordinates the transaction: the new
    /// coordinator finds it prepared and finishes it.
    func deliver(_ plan: MarkerPlan, after written: [InternalWrite], token: UInt64) async {
        // The epoch this delivery works in: a new leadership (even of this broker) starts its own.
        guard let coordinatorEpoch = coordinatorEpoch(of: plan.transactionalID) else { return }
        for write in written {
            while true {
                let code = await write.partition.highWatermark(reaching: write.end, timeoutMs: InternalWrite.writeTimeoutMs)
                if code == .none { break }
                guard stillDelivering(plan, epoch: coordinatorEpoch) else {
                    logger.info("transaction \(plan.transactionalID): no longer its coordinator; the new one finishes it")
                    return
                }
                logger.warning("transaction \(plan.transactionalID): its \(plan.prepared.status.name) state has not reached the ISR yet (\(code)); waiting")
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
        var remaining = plan.partitions
        var backOffMs: UInt64 = 20
        while !remaining.isEmpty {
            guard stillDelivering(plan, epoch: coordinatorEpoch) else {
                logger.info("transaction \(plan.transactionalID): no longer its coordinator; the new one finishes it")
                return
            }
            let image = cluster.current?.image ?? MetadataImage()
            var byLeader: [NodeID: [TxnPartition]] = [:]
            var again: [TxnPartition] = []
            for target in remaining {
                guard let topic = image.topic(named: target.topic), Int(target.partition) < topic.partitions.count else {
                    logger.info("transaction \(plan.transactionalID): \(target) no longer exists; no marker written")
                    continue
                }
                guard let leader = topic.partitions[Int(target.partition)].leader else { again.append(target); continue }
                byLeader[leader, default: []].append(target)
            }
            for (leader, targets) in byLeader.sorted(by: { $0.key < $1.key }) {
                let codes = leader == node ? await writeLocally(plan, targets, coordinatorEpoch)
                                           : await send(plan, targets, coordinatorEpoch, to: leader)
                for target in targets {
                    switch codes[target] ?? .requestTimedOut {
                    // (A deleted topic was dropped above, from this broker's image; a leader that
                    // does not know the partition yet is behind, and asked again.)
                    case .none: break
                    case .producerFenced, .invalidProducerEpoch, .transactionCoordinatorFenced:
                        logger.warning("transaction \(plan.transactionalID): \(target) refused its marker as stale; dropped")
                    default: again.append(target)
                    }
                }
            }
            remaining = again
            if !remaining.isEmpty {
                try? await Task.sleep(nanoseconds: backOffMs * 1_000_000)
                backOffMs = min(backOffMs * 2, 1000)
            }
        }
        let time = clock.now()
        let index = stateTopic.partitionCountNow.map { InternalTopic.partitionIndex(for: plan.transactionalID, partitions: $0) }
        state.withLock { s in
            guard let index, s.owned[index] == coordinatorEpoch, !s.loading.contains(index),
                  s.coordinator.metadata(plan.transactionalID) == plan.prepared else { return }
            let before = s.coordinator
            guard let m = s.coordinator.completeEnd(transactionalID: plan.transactionalID, now: time.ms) else { return }
            // Done with it in the same step: the producer's next transaction may end at once.
            if s.delivering[plan.transactionalID] == token { s.delivering[plan.transactionalID] = nil }
            do { try write([(plan.transactionalID, m)]) } catch {
                // Still prepared: resumeDeliveries sends the markers again (they change nothing twice).
                logger.error("writing transaction state of \(plan.transactionalID): \(error)")
                s.coordinator = before
            }
        }
    }

    func writeLocally(_ plan: MarkerPlan, _ targets: [TxnPartition], _ coordinatorEpoch: LeaderEpoch) async -> [TxnPartition: ErrorCode] {
        var codes: [TxnPartition: ErrorCode] = [:]
        for target in targets {
            let (code, write) = writeMarker(target, producerID: plan.producerID, epoch: plan.epoch, commit: plan.commit,
                                            coordinatorEpoch: coordinatorEpoch)
            codes[target] = code
            if let write { codes[target] = await write.partition.highWatermark(reaching: write.end, timeoutMs: InternalWrite.writeTimeoutMs) }
        }
        return codes
    }

    func send(_ plan: MarkerPlan, _ targets: [TxnPartition], _ coordinatorEpoch: LeaderEpoch,
              to leader: NodeID) async -> [TxnPartition: ErrorCode] {
        var byTopic: [String: [Int32]] = [:]
        for target in targets { byTopic[target.topic, default: []].append(target.partition) }
        let marker = WriteTxnMarkersRequest.WritableTxnMarker(
            producerId: plan.producerID, producerEpoch: plan.epoch, transactionResult: plan.commit,
            topics: byTopic.sorted { $0.key < $1.key }.map { .init(name: $0.key, partitionIndexes: $0.value) },
            coordinatorEpoch: coordinatorEpoch.value)
        guard let response = await cluster.sendMarkers(to: leader, WriteTxnMarkersRequest(markers: [marker])) else { return [:] }
        var codes: [TxnPartition: ErrorCode] = [:]
        for result in response.markers where result.producerId == plan.producerID {
            for topic in result.topics {
                for p in topic.partitions { codes[TxnPartition(topic.name, p.partitionIndex)] = ErrorCode(rawValue: p.errorCode) }
            }
        }
        return codes
    }
}
