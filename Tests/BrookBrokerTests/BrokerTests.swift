import BrookBroker
import BrookCore
import BrookProtocol
import BrookRecords
import NIOCore
import NIOEmbedded
import Testing

/// The broker's request handling, frame in and frame out, without sockets.
@Suite struct BrokerTests {
    // MARK: ApiVersions and dispatch

    @Test func apiVersionsListsEveryHandler() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        for version in ApiVersionsRequest.versions {
            let response = try h.send(ApiVersionsRequest(clientSoftwareName: "brook-test", clientSoftwareVersion: "1"), version: version)
            #expect(response.errorCode == 0)
            let keys = response.apiKeys.map(\.apiKey)
            #expect(keys == keys.sorted())
            #expect(Set(keys) == Set(ApiCatalog.entries.map(\.key)), "every API with a definition has a handler")
            #expect(Set(keys) == Set(h.broker.handlers.entries.keys))
            let produce = try #require(response.apiKeys.first { $0.apiKey == 0 })
            #expect(produce.minVersion == 0 && produce.maxVersion == 12)
            for entry in h.broker.handlers.sorted where entry.apiKey != 0 {
                let listed = try #require(response.apiKeys.first { $0.apiKey == entry.apiKey })
                #expect(listed.minVersion == entry.versions.lowerBound && listed.maxVersion == entry.versions.upperBound)
            }
            let fetch = try #require(response.apiKeys.first { $0.apiKey == 1 })
            #expect(fetch.minVersion == 4 && fetch.maxVersion == 17)
            // Feature flags from version 3 (tagged fields, so absent before): Kafka 4.0's
            // metadata.version and the KIP-848 group.version; no transaction.version 2.
            let supported = response.supportedFeatures.map { "\($0.name) \($0.minVersion)-\($0.maxVersion)" }
            let finalized = response.finalizedFeatures.map { "\($0.name) \($0.minVersionLevel)-\($0.maxVersionLevel)" }
            if version >= 3 {
                #expect(supported == ["group.version 0-1", "metadata.version 7-25"])
                #expect(finalized == ["group.version 1-1", "metadata.version 25-25"])
                // (No metadata image in this harness: Kafka's -1 for an unknown epoch.)
                #expect(response.finalizedFeaturesEpoch == -1)
            } else {
                #expect(supported.isEmpty && finalized.isEmpty && response.finalizedFeaturesEpoch == -1)
            }
        }
    }

    /// A newer ApiVersions than served is answered with UNSUPPORTED_VERSION in v0's layout (and
    /// the v0 response header), listing what is served.
    @Test func unsupportedApiVersionsVersionAnswersInV0Layout() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        // v99 (flexible: request header v2); its body is not read.
        var writer = WireWriter()
        RequestHeader(apiKey: 18, apiVersion: 99, correlationID: 77, clientID: "new-client").encode(to: &writer)
        writer.buffer.writeBytes([0x05, 0x66, 0x75, 0x74, 0x75, 0x00])
        guard case .respond(let encoded) = try h.broker.handle(frame: writer.buffer, eventLoop: h.loop) else {
            Issue.record("no immediate answer")
            return
        }
        let response = try h.decodeResponse(encoded, ApiVersionsResponse.self, apiKey: 18, version: 0, correlation: 77)
        #expect(response.errorCode == ErrorCode.unsupportedVersion.rawValue)
        #expect(response.errorCode == 35)
        #expect(response.apiKeys.contains { $0.apiKey == 18 && $0.maxVersion == 4 })
        #expect(response.apiKeys.count == h.broker.handlers.entries.count)
        // Exactly: size, correlation id, then the v0 body (no tagged fields anywhere).
        let whole = try BrokerHarness.wholeBytes(encoded)
        #expect(whole.readableBytes == 4 + 4 + 2 + 4 + 6 * response.apiKeys.count)
    }

    @Test func unknownApiKeyOrUnservedVersionIsRefused() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        var writer = WireWriter()
        RequestHeader(apiKey: 999, apiVersion: 0, correlationID: 1, clientID: nil).encode(to: &writer)
        #expect(throws: RequestRefused.self) { try h.broker.handle(frame: writer.buffer, eventLoop: h.loop) }
        // Metadata v14 is not served.
        #expect(throws: RequestRefused.self) {
            try h.broker.handle(frame: h.frame(MetadataRequest(), version: 13, apiVersion: 14), eventLoop: h.loop)
        }
        // Produce v2 is listed (for librdkafka) but not served.
        #expect(throws: RequestRefused.self) {
            try h.broker.handle(frame: h.frame(ProduceRequest(), version: 3, apiVersion: 2), eventLoop: h.loop)
        }
        // A body that does not decode is a protocol error: Metadata v12 announcing five topics
        // and ending there.
        var bad = WireWriter()
        RequestHeader(apiKey: MetadataRequest.apiKey, apiVersion: 12, correlationID: 2, clientID: nil).encode(to: &bad)
        bad.writeUnsignedVarint(6)
        #expect(throws: ProtocolError.self) { try h.broker.handle(frame: bad.buffer, eventLoop: h.loop) }
        // Bytes after a complete body are ignored, as Kafka does (librdkafka 2.16 sends some).
        var trailing = h.frame(MetadataRequest(topics: nil), version: 12)
        trailing.writeInteger(UInt8(0))
        #expect(throws: Never.self) { try h.broker.handle(frame: trailing, eventLoop: h.loop) }
        // A frame shorter than a header.
        #expect(throws: ProtocolError.self) { try h.broker.handle(frame: ByteBuffer(bytes: [0, 3, 0]), eventLoop: h.loop) }
    }

    // MARK: topics

    @Test func createTopics() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let request = CreateTopicsRequest(topics: [
            .init(name: "orders", numPartitions: 3, replicationFactor: 1, configs: [.init(name: "retention.ms", value: "1000")]),
            .init(name: "defaults", numPartitions: -1, replicationFactor: -1),
            .init(name: "bad name!", numPartitions: 1, replicationFactor: 1),
            .init(name: "replicated", numPartitions: 1, replicationFactor: 3),
            .init(name: "empty", numPartitions: 0, replicationFactor: 1),
            .init(name: "badconfig", numPartitions: 1, replicationFactor: 1, configs: [.init(name: "retention.ms", value: "soon")]),
        ])
        let results = try h.send(request, version: 7).topics
        #expect(results.map(\.name) == ["orders", "defaults", "bad name!", "replicated", "empty", "badconfig"])
        let orders = results[0]
        #expect(orders.errorCode == 0)
        #expect(orders.topicId != .zero)
        #expect(orders.topicId == h.broker.topics.topic("orders")?.id)
        #expect(orders.numPartitions == 3 && orders.replicationFactor == 1)
        #expect(orders.configs?.first { $0.name == "retention.ms" }?.value == "1000")
        #expect(orders.configs?.first { $0.name == "retention.ms" }?.configSource == 1)
        #expect(results[1].errorCode == 0 && results[1].numPartitions == 1)
        #expect(results[2].errorCode == ErrorCode.invalidTopicException.rawValue)
        #expect(results[3].errorCode == ErrorCode.invalidReplicationFactor.rawValue)
        #expect(results[4].errorCode == ErrorCode.invalidPartitions.rawValue)
        #expect(results[5].errorCode == ErrorCode.invalidConfig.rawValue)
        #expect(results[2...].allSatisfy { $0.errorMessage != nil })
        #expect(h.broker.topics.topic("orders")?.partitions.count == 3)
        #expect(h.broker.topics.topic("replicated") == nil)

        // Already exists.
        let again = try h.send(CreateTopicsRequest(topics: [.init(name: "orders", numPartitions: 1, replicationFactor: 1)]), version: 7)
        #expect(again.topics[0].errorCode == ErrorCode.topicAlreadyExists.rawValue)
        // The same name twice in one request.
        let twice = try h.send(CreateTopicsRequest(topics: [.init(name: "dup", numPartitions: 1, replicationFactor: 1),
                                                            .init(name: "dup", numPartitions: 1, replicationFactor: 1)]), version: 5)
        #expect(twice.topics.map(\.errorCode) == [ErrorCode.invalidRequest.rawValue, ErrorCode.invalidRequest.rawValue])
        #expect(h.broker.topics.topic("dup") == nil)
        // An old version (v2) answers in its own layout.
        let old = try h.send(CreateTopicsRequest(topics: [.init(name: "old", numPartitions: 2, replicationFactor: 1)]), version: 2)
        #expect(old.topics[0].errorCode == 0 && old.topics[0].topicId == .zero)  // no topic id before v7
    }

    @Test func createTopicsValidateOnly() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let request = CreateTopicsRequest(topics: [.init(name: "dry", numPartitions: 4, replicationFactor: 1)], timeoutMs: 1000, validateOnly: true)
        let result = try h.send(request, version: 6).topics[0]
        #expect(result.errorCode == 0)
        #expect(result.numPartitions == 4)
        #expect(h.broker.topics.topic("dry") == nil)
        try h.createTopic("wet")
        let clash = try h.send(CreateTopicsRequest(topics: [.init(name: "wet", numPartitions: 1, replicationFactor: 1)], validateOnly: true), version: 6)
        #expect(clash.topics[0].errorCode == ErrorCode.topicAlreadyExists.rawValue)
    }

    @Test func createTopicsWithAssignments() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let ok = CreateTopicsRequest(topics: [.init(name: "assigned", numPartitions: -1, replicationFactor: -1, assignments: [
            .init(partitionIndex: 1, brokerIds: [NodeID(1)]), .init(partitionIndex: 0, brokerIds: [NodeID(1)]),
        ])])
        #expect(try h.send(ok, version: 7).topics[0].numPartitions == 2)
        let elsewhere = CreateTopicsRequest(topics: [.init(name: "elsewhere", numPartitions: -1, replicationFactor: -1, assignments: [
            .init(partitionIndex: 0, brokerIds: [NodeID(2)]),
        ])])
        #expect(try h.send(elsewhere, version: 7).topics[0].errorCode == ErrorCode.invalidReplicaAssignment.rawValue)
    }

    @Test func metadataAutoCreatesTopics() throws {
        let h = try BrokerHarness([("num.partitions", "2")])
        defer { h.close() }
        let response = try h.send(MetadataRequest(topics: [.init(name: "auto")], allowAutoTopicCreation: true), version: 12)
        #expect(response.brokers.map(\.nodeId) == [NodeID(1)])
        #expect(response.controllerId == NodeID(1))
        #expect(response.clusterId == h.broker.clusterID)
        let topic = try #require(response.topics.first)
        #expect(topic.errorCode == 0 && topic.name == "auto")
        #expect(topic.topicId == h.broker.topics.topic("auto")?.id && topic.topicId != .zero)
        #expect(topic.partitions.map(\.partitionIndex) == [0, 1])
        #expect(topic.partitions.allSatisfy { $0.leaderId == NodeID(1) && $0.replicaNodes == [NodeID(1)] && $0.isrNodes == [NodeID(1)] })

        // Not when the request says no (v4+), nor for a bad name.
        let refused = try h.send(MetadataRequest(topics: [.init(name: "manual"), .init(name: "bad/name")], allowAutoTopicCreation: false), version: 12)
        #expect(refused.topics.map(\.errorCode) == [ErrorCode.unknownTopicOrPartition.rawValue, ErrorCode.invalidTopicException.rawValue])
        #expect(h.broker.topics.topic("manual") == nil)
        // v3 has no such flag: it creates.
        let v3 = try h.send(MetadataRequest(topics: [.init(name: "old-style")]), version: 3)
        #expect(v3.topics[0].errorCode == 0)
        // By topic id (v10+); an unknown id.
        let id = try #require(h.broker.topics.topic("auto")?.id)
        let byID = try h.send(MetadataRequest(topics: [.init(topicId: id, name: nil), .init(topicId: KafkaUUID(high: 5, low: 5), name: nil)]), version: 12)
        #expect(byID.topics[0].name == "auto")
        #expect(byID.topics[1].errorCode == ErrorCode.unknownTopicID.rawValue)
        // Every topic: null in v1+, empty in v0; empty in v1+ is none.
        #expect(try h.send(MetadataRequest(topics: nil), version: 12).topics.map(\.name) == ["auto", "old-style"])
        #expect(try h.send(MetadataRequest(topics: []), version: 0).topics.map(\.name) == ["auto", "old-style"])
        #expect(try h.send(MetadataRequest(topics: []), version: 1).topics.isEmpty)
    }

    @Test func metadataWithoutAutoCreation() throws {
        let h = try BrokerHarness([("auto.create.topics.enable", "false")])
        defer { h.close() }
        let response = try h.send(MetadataRequest(topics: [.init(name: "nope")], allowAutoTopicCreation: true), version: 9)
        #expect(response.topics[0].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(h.broker.topics.topic("nope") == nil)
    }

    // MARK: produce, fetch, offsets

    @Test func produceThenFetch() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("events", partitions: 2)
        let now = h.clock.now().ms
        let first = try h.produce("events", batch(["a", "b"], timestamps: [now, now]))
        #expect(first.errorCode == 0 && first.baseOffset == Offset(0))
        #expect(first.logAppendTimeMs == -1 && first.logStartOffset == Offset(0))
        let second = try h.produce("events", batch(["c"], timestamps: [now]), version: 12)
        #expect(second.errorCode == 0 && second.baseOffset == Offset(2))

        for version: Int16 in [4, 11, 12, 13, 17] {
            let data = try h.fetch("events", offset: 0, version: version)
            #expect(data.errorCode == 0, "v\(version)")
            #expect(data.highWatermark == Offset(3))
            #expect(data.logStartOffset == Offset(version >= 5 ? 0 : -1))  // v5+ only
            #expect(try fetchedRecords(data.records).map(\.value) == ["a", "b", "c"], "v\(version)")
        }
        let fromMiddle = try h.fetch("events", offset: 2)
        #expect(try fetchedRecords(fromMiddle.records).map(\.offset) == [2])
        let atEnd = try h.fetch("events", offset: 3)
        #expect(atEnd.errorCode == 0 && (atEnd.records?.byteCount ?? 0) == 0)
        let other = try h.fetch("events", partition: 1, offset: 0)
        #expect(other.errorCode == 0 && other.highWatermark == Offset(0))
    }

    @Test func fetchOutOfRangeAndUnknown() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        try h.produce("t", batch(["x"], timestamps: [now]))
        let beyond = try h.fetch("t", offset: 5)
        #expect(beyond.errorCode == ErrorCode.offsetOutOfRange.rawValue)
        #expect(beyond.highWatermark == Offset(1) && beyond.logStartOffset == Offset(0))
        let negative = try h.fetch("t", offset: -1)
        #expect(negative.errorCode == ErrorCode.offsetOutOfRange.rawValue)
        #expect(try h.fetch("t", partition: 3, offset: 0).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(try h.fetch("missing", offset: 0).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(try h.fetch("missing", offset: 0, version: 13).errorCode == ErrorCode.unknownTopicID.rawValue)
        // A fetch session epoch > 0 names a session Brook never made.
        var session = h.fetchRequest("t", offset: 0)
        session.sessionEpoch = 1
        #expect(try h.send(session, version: 12).errorCode == ErrorCode.fetchSessionIDNotFound.rawValue)
    }

    /// Kafka answers a fetch at once when a partition has an error, however long it may wait
    /// (ReplicaManager.fetchMessages: `errorReadingData`).
    @Test func fetchWithAPartitionErrorIsNotParked() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let request = h.fetchRequest("t", offset: 5, minBytes: 1, maxWaitMs: 500)
        let outcome = try h.outcome(request, version: 12)
        guard case .respond = outcome else {
            Issue.record("an out-of-range fetch was parked")
            return
        }
        if case .later(let future) = outcome {
            // Let it time out, so that its promise is kept.
            var answer: EncodedResponse?
            future.assumeIsolated().whenSuccess { answer = $0 }
            h.loop.advanceTime(by: .milliseconds(500))
            let response = try h.decodeResponse(try #require(answer), FetchResponse.self, apiKey: 1, version: 12, correlation: h.correlation)
            #expect(response.responses[0].partitions[0].errorCode == ErrorCode.offsetOutOfRange.rawValue)
        }
    }

    @Test func produceErrors() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        #expect(try h.produce("missing", batch(["x"], timestamps: [now])).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(try h.produce("t", partition: 1, batch(["x"], timestamps: [now])).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        var corrupt = batch(["x"], timestamps: [now])
        corrupt[corrupt.count - 1] ^= 0xFF  // breaks the CRC
        #expect(try h.produce("t", corrupt).errorCode == ErrorCode.corruptMessage.rawValue)
        let badAcks = try h.send(h.produceRequest("t", batches: [batch(["x"], timestamps: [now])], acks: 2), version: 9)
        #expect(badAcks.responses[0].partitionResponses[0].errorCode == ErrorCode.invalidRequiredAcks.rawValue)
        // acks=0: no answer, but the records are appended.
        guard case .none = try h.outcome(h.produceRequest("t", batches: [batch(["y"], timestamps: [now])], acks: 0), version: 9) else {
            Issue.record("acks=0 was answered")
            return
        }
        #expect(try h.listOffset("t", timestamp: -1).offset == Offset(1))
    }

    @Test func listOffsets() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let t0 = h.clock.now().ms
        try h.produce("t", batch(["a", "b"], timestamps: [t0, t0 + 10]))   // offsets 0, 1
        try h.produce("t", batch(["c"], timestamps: [t0 + 50]))           // offset 2
        try h.produce("t", batch(["d", "e"], timestamps: [t0 + 20, t0 + 30])) // offsets 3, 4

        for version in ListOffsetsRequest.versions {
            let latest = try h.listOffset("t", timestamp: -1, version: version)
            #expect(latest.errorCode == 0 && latest.offset == Offset(5) && latest.timestamp == -1, "v\(version)")
            let earliest = try h.listOffset("t", timestamp: -2, version: version)
            #expect(earliest.offset == Offset(0), "v\(version)")
        }
        let at = try h.listOffset("t", timestamp: t0 + 5)
        #expect(at.offset == Offset(1) && at.timestamp == t0 + 10)
        #expect(try h.listOffset("t", timestamp: t0 + 10).offset == Offset(1))
        #expect(try h.listOffset("t", timestamp: t0 + 11).offset == Offset(2))  // c at +50 is the first at or after +11
        #expect(try h.listOffset("t", timestamp: t0 + 51).offset == Offset(-1))  // none
        let max = try h.listOffset("t", timestamp: -3)
        #expect(max.offset == Offset(2) && max.timestamp == t0 + 50)
        #expect(try h.listOffset("missing", timestamp: -1).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        // A current leader epoch ahead of the broker's.
        let ahead = ListOffsetsRequest(replicaId: NodeID(-1), topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, currentLeaderEpoch: LeaderEpoch(5), timestamp: -1)])])
        #expect(try h.send(ahead, version: 7).topics[0].partitions[0].errorCode == ErrorCode.unknownLeaderEpoch.rawValue)
    }

    @Test func deleteRecordsMovesTheLogStart() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        for value in ["a", "b", "c", "d"] { try h.produce("t", batch([value], timestamps: [now])) }
        let request = DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: Offset(2))])], timeoutMs: 1000)
        for version in DeleteRecordsRequest.versions {
            let result = try h.send(request, version: version).topics[0].partitions[0]
            #expect(result.errorCode == 0 && result.lowWatermark == Offset(2), "v\(version)")
        }
        #expect(try h.listOffset("t", timestamp: -2).offset == Offset(2))
        #expect(try h.fetch("t", offset: 1).errorCode == ErrorCode.offsetOutOfRange.rawValue)
        let fetched = try h.fetch("t", offset: 2)
        #expect(fetched.logStartOffset == Offset(2))
        #expect(try fetchedRecords(fetched.records).map(\.value) == ["c", "d"])
        // -1: up to the high watermark.
        let all = DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: Offset(-1)), .init(partitionIndex: 7, offset: Offset(0))])])
        let results = try h.send(all, version: 2).topics[0].partitions
        #expect(results[0].lowWatermark == Offset(4))
        #expect(results[1].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        let beyond = DeleteRecordsRequest(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, offset: Offset(9))])])
        #expect(try h.send(beyond, version: 2).topics[0].partitions[0].errorCode == ErrorCode.offsetOutOfRange.rawValue)
    }

    // MARK: configs

    @Test func describeConfigsListsEveryConfigWithSources() throws {
        let h = try BrokerHarness([("log.retention.ms", "86400000")])
        defer { h.close() }
        try h.createTopic("t", configs: ["cleanup.policy": "compact"])
        let result = try h.describeTopicConfigs("t", synonyms: true)
        #expect(result.errorCode == 0 && result.resourceName == "t" && result.resourceType == 2)
        #expect(Set(result.configs.map(\.name)) == Set(TopicConfigs.all.map(\.name)))
        #expect(result.configs.count == TopicConfigs.all.count)
        let byName = Dictionary(uniqueKeysWithValues: result.configs.map { ($0.name, $0) })
        let cleanup = try #require(byName["cleanup.policy"])
        #expect(cleanup.value == "compact" && cleanup.configSource == 1)  // TOPIC_CONFIG
        #expect(cleanup.synonyms.map(\.source) == [1, 5])
        #expect(cleanup.synonyms.map(\.name) == ["cleanup.policy", "log.cleanup.policy"])
        #expect(cleanup.configType == 7)  // LIST
        let retention = try #require(byName["retention.ms"])
        #expect(retention.value == "86400000" && retention.configSource == 4)  // STATIC_BROKER_CONFIG
        #expect(retention.synonyms.map(\.source) == [4, 5])
        let segment = try #require(byName["segment.bytes"])
        #expect(segment.value == "1073741824" && segment.configSource == 5)  // DEFAULT_CONFIG
        #expect(result.configs.allSatisfy { !$0.isSensitive && !$0.readOnly })

        // Without synonyms; only some keys; older versions.
        let plain = try h.describeTopicConfigs("t", synonyms: false, version: 1)
        #expect(plain.configs.allSatisfy { $0.synonyms.isEmpty })
        let some = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configurationKeys: ["retention.ms", "nope"])]), version: 3)
        #expect(some.results[0].configs.map(\.name) == ["retention.ms"])
        // Unknown topic, bad name, unknown resource type.
        let problems = try h.send(DescribeConfigsRequest(resources: [
            .init(resourceType: 2, resourceName: "missing"), .init(resourceType: 2, resourceName: "bad name"),
            .init(resourceType: 99, resourceName: "x"),
        ]), version: 4)
        #expect(problems.results.map(\.errorCode) == [ErrorCode.unknownTopicOrPartition.rawValue, ErrorCode.invalidTopicException.rawValue, ErrorCode.invalidRequest.rawValue])
        // The broker itself (read-only).
        let broker = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: "1")]), version: 4).results[0]
        #expect(broker.errorCode == 0)
        #expect(broker.configs.allSatisfy { $0.readOnly })
        #expect(broker.configs.first { $0.name == "log.retention.ms" }.map { ($0.value, $0.configSource) } ?? (nil, 0) == ("86400000", 4))
        #expect(broker.configs.first { $0.name == "node.id" }?.value == "1")
        let otherBroker = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 4, resourceName: "2")]), version: 4)
        #expect(otherBroker.results[0].errorCode == ErrorCode.invalidRequest.rawValue)
    }

    @Test func incrementalAlterConfigsSetAndDelete() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        func alter(_ configs: [IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig], topic: String = "t",
                   validateOnly: Bool = false, version: Int16 = 1) throws -> Int16 {
            let request = IncrementalAlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: topic, configs: configs)], validateOnly: validateOnly)
            return try h.send(request, version: version).responses[0].errorCode
        }
        func value(_ name: String) throws -> (String?, Int8) {
            let config = try #require(try h.describeTopicConfigs("t").configs.first { $0.name == name })
            return (config.value, config.configSource)
        }
        #expect(try alter([.init(name: "retention.ms", configOperation: 0, value: "1000"), .init(name: "segment.ms", configOperation: 0, value: "5000")]) == 0)
        #expect(try value("retention.ms") == ("1000", 1))
        #expect(try value("segment.ms") == ("5000", 1))
        #expect(try alter([.init(name: "retention.ms", configOperation: 1, value: nil)], version: 0) == 0)
        #expect(try value("retention.ms") == ("604800000", 5))
        #expect(try value("segment.ms") == ("5000", 1))  // untouched
        // APPEND on a list.
        #expect(try alter([.init(name: "cleanup.policy", configOperation: 2, value: "compact")]) == 0)
        #expect(try value("cleanup.policy") == ("delete,compact", 1))
        // validate_only changes nothing.
        #expect(try alter([.init(name: "segment.ms", configOperation: 0, value: "9000")], validateOnly: true) == 0)
        #expect(try value("segment.ms") == ("5000", 1))
        // Errors.
        #expect(try alter([.init(name: "no.such.config", configOperation: 0, value: "1")]) == ErrorCode.invalidConfig.rawValue)
        #expect(try alter([.init(name: "retention.ms", configOperation: 0, value: "abc")]) == ErrorCode.invalidConfig.rawValue)
        #expect(try alter([.init(name: "retention.ms", configOperation: 9, value: "1")]) == ErrorCode.invalidRequest.rawValue)
        #expect(try alter([.init(name: "retention.ms", configOperation: 2, value: "1")]) == ErrorCode.invalidConfig.rawValue)
        #expect(try alter([.init(name: "retention.ms", configOperation: 0, value: "1")], topic: "missing") == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    @Test func alterConfigsReplacesTheWholeSet() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t", configs: ["retention.ms": "1000", "segment.ms": "5000"])
        let request = AlterConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configs: [.init(name: "cleanup.policy", value: "compact")])],
                                          validateOnly: false)
        for version in AlterConfigsRequest.versions {
            let response = try h.send(request, version: version)
            #expect(response.responses.map(\.errorCode) == [0], "v\(version)")
            #expect(response.responses[0].resourceName == "t" && response.responses[0].resourceType == 2)
        }
        let configs = try h.describeTopicConfigs("t").configs
        #expect(configs.first { $0.name == "cleanup.policy" }?.value == "compact")
        #expect(configs.first { $0.name == "retention.ms" }.map { ($0.value, $0.configSource) } ?? (nil, 0) == ("604800000", 5))
        #expect(configs.first { $0.name == "segment.ms" }?.configSource == 5)
        #expect(h.broker.topics.topic("t")?.overrides == ["cleanup.policy": "compact"])
        // Broker resources cannot be altered here.
        let broker = try h.send(AlterConfigsRequest(resources: [.init(resourceType: 4, resourceName: "1", configs: [])]), version: 1)
        #expect(broker.responses[0].errorCode == ErrorCode.invalidRequest.rawValue)
    }

    // MARK: partitions and deletion

    @Test func createPartitions() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let grow = CreatePartitionsRequest(topics: [.init(name: "t", count: 3, assignments: nil)], timeoutMs: 1000, validateOnly: false)
        #expect(try h.send(grow, version: 3).results.map(\.errorCode) == [0])
        let metadata = try h.send(MetadataRequest(topics: [.init(name: "t")]), version: 12)
        #expect(metadata.topics[0].partitions.map(\.partitionIndex) == [0, 1, 2])
        let now = h.clock.now().ms
        #expect(try h.produce("t", partition: 2, batch(["p2"], timestamps: [now])).errorCode == 0)

        let dry = CreatePartitionsRequest(topics: [.init(name: "t", count: 5)], validateOnly: true)
        #expect(try h.send(dry, version: 0).results[0].errorCode == 0)
        #expect(h.broker.topics.topic("t")?.partitions.count == 3)
        let shrink = CreatePartitionsRequest(topics: [.init(name: "t", count: 2), .init(name: "missing", count: 2)])
        let results = try h.send(shrink, version: 2).results
        #expect(results.map(\.errorCode) == [ErrorCode.invalidPartitions.rawValue, ErrorCode.unknownTopicOrPartition.rawValue])
        #expect(results.allSatisfy { $0.errorMessage != nil })
        let elsewhere = CreatePartitionsRequest(topics: [.init(name: "t", count: 4, assignments: [.init(brokerIds: [NodeID(7)])])])
        #expect(try h.send(elsewhere, version: 1).results[0].errorCode == ErrorCode.invalidReplicaAssignment.rawValue)
    }

    @Test func deleteTopics() throws {
        let h = try BrokerHarness([("auto.create.topics.enable", "false")])
        defer { h.close() }
        let a = try h.createTopic("a")
        try h.createTopic("b")
        // By name (v1-v5).
        let byName = try h.send(DeleteTopicsRequest(topicNames: ["b", "missing"], timeoutMs: 1000), version: 5)
        #expect(byName.responses.map(\.errorCode) == [0, ErrorCode.unknownTopicOrPartition.rawValue])
        #expect(byName.responses.map(\.name) == ["b", "missing"])
        // By id (v6).
        let byID = try h.send(DeleteTopicsRequest(topics: [.init(name: nil, topicId: a.topicId), .init(name: nil, topicId: KafkaUUID(high: 1, low: 1))]), version: 6)
        #expect(byID.responses[0].errorCode == 0 && byID.responses[0].name == "a" && byID.responses[0].topicId == a.topicId)
        #expect(byID.responses[1].errorCode == ErrorCode.unknownTopicID.rawValue)
        #expect(h.broker.topics.allTopics().isEmpty)
        let metadata = try h.send(MetadataRequest(topics: [.init(name: "a")]), version: 12)
        #expect(metadata.topics[0].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        // The name can be used again, with a new id.
        let again = try h.createTopic("a")
        #expect(again.topicId != a.topicId)
    }

    @Test func deleteTopicsDisabled() throws {
        let h = try BrokerHarness([("delete.topic.enable", "false")])
        defer { h.close() }
        try h.createTopic("kept")
        let response = try h.send(DeleteTopicsRequest(topicNames: ["kept"]), version: 4)
        #expect(response.responses[0].errorCode == 73)  // TOPIC_DELETION_DISABLED
        #expect(h.broker.topics.topic("kept") != nil)
    }

    // MARK: the other APIs

    @Test func describeClusterLogDirsAndLeaderEpochs() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let now = h.clock.now().ms
        try h.produce("t", batch(["a", "b"], timestamps: [now, now]))
        let cluster = try h.send(DescribeClusterRequest(includeClusterAuthorizedOperations: false, endpointType: 1), version: 1)
        #expect(cluster.errorCode == 0 && cluster.clusterId == h.broker.clusterID && cluster.controllerId == NodeID(1))
        #expect(cluster.brokers.map(\.brokerId) == [NodeID(1)] && cluster.brokers[0].port == 9092)

        let dirs = try h.send(DescribeLogDirsRequest(topics: nil), version: 4)
        #expect(dirs.results.map(\.logDir) == [h.directory])
        #expect(dirs.results[0].topics.map(\.name) == ["t"])
        #expect(dirs.results[0].topics[0].partitions[0].partitionSize > 0)
        #expect(dirs.results[0].totalBytes > 0)

        let epochs = OffsetForLeaderEpochRequest(replicaId: NodeID(-1), topics: [.init(topic: "t", partitions: [
            .init(partition: 0, currentLeaderEpoch: LeaderEpoch(-1), leaderEpoch: LeaderEpoch(0)),
            .init(partition: 0, currentLeaderEpoch: LeaderEpoch(3), leaderEpoch: LeaderEpoch(0)),
            .init(partition: 9, leaderEpoch: LeaderEpoch(0)),
        ])])
        let answer = try h.send(epochs, version: 4).topics[0].partitions
        #expect(answer[0].errorCode == 0 && answer[0].endOffset == Offset(2) && answer[0].leaderEpoch == LeaderEpoch(0))
        #expect(answer[1].errorCode == ErrorCode.unknownLeaderEpoch.rawValue)
        #expect(answer[2].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    // MARK: long poll

    /// min_bytes=1 with nothing to read: the fetch waits, and an append answers it.
    @Test func longPollFetchCompletesWhenAProduceArrives() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let request = h.fetchRequest("t", offset: 0, minBytes: 1, maxWaitMs: 500)
        guard case .later(let future) = try h.outcome(request, version: 12) else {
            Issue.record("an empty min_bytes=1 fetch was answered at once")
            return
        }
        let fetchCorrelation = h.correlation
        var answer: EncodedResponse?
        future.assumeIsolated().whenSuccess { answer = $0 }
        h.loop.run()
        #expect(answer == nil)
        h.loop.advanceTime(by: .milliseconds(100))
        #expect(answer == nil)

        let now = h.clock.now().ms
        #expect(try h.produce("t", batch(["late"], timestamps: [now])).errorCode == 0)
        h.loop.run()
        let encoded = try #require(answer, "the produce did not complete the parked fetch")
        let response = try h.decodeResponse(encoded, FetchResponse.self, apiKey: 1, version: 12, correlation: fetchCorrelation)
        let data = response.responses[0].partitions[0]
        #expect(data.errorCode == 0 && data.highWatermark == Offset(1))
        #expect(try fetchedRecords(data.records).map(\.value) == ["late"])
        // The timeout was cancelled: advancing time changes nothing.
        h.loop.advanceTime(by: .seconds(1))
    }

    /// With nothing produced, the fetch is answered empty when max_wait_ms has passed.
    @Test func longPollFetchTimesOutEmpty() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        guard case .later(let future) = try h.outcome(h.fetchRequest("t", offset: 0, minBytes: 1, maxWaitMs: 500), version: 16) else {
            Issue.record("an empty min_bytes=1 fetch was answered at once")
            return
        }
        let fetchCorrelation = h.correlation
        var answer: EncodedResponse?
        future.assumeIsolated().whenSuccess { answer = $0 }
        h.loop.advanceTime(by: .milliseconds(499))
        #expect(answer == nil)
        h.loop.advanceTime(by: .milliseconds(1))
        let encoded = try #require(answer, "the fetch did not time out")
        let response = try h.decodeResponse(encoded, FetchResponse.self, apiKey: 1, version: 16, correlation: fetchCorrelation)
        let data = response.responses[0].partitions[0]
        #expect(data.errorCode == 0 && data.highWatermark == Offset(0))
        #expect((data.records?.byteCount ?? 0) == 0)
        #expect(response.responses[0].topicId == h.broker.topics.topic("t")?.id)
    }

    /// An append smaller than min_bytes does not answer the fetch; the timeout does, with it.
    @Test func longPollFetchWaitsForMinBytes() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        guard case .later(let future) = try h.outcome(h.fetchRequest("t", offset: 0, minBytes: 100_000, maxWaitMs: 300), version: 12) else {
            Issue.record("answered at once")
            return
        }
        let fetchCorrelation = h.correlation
        var answer: EncodedResponse?
        future.assumeIsolated().whenSuccess { answer = $0 }
        let now = h.clock.now().ms
        try h.produce("t", batch(["small"], timestamps: [now]))
        h.loop.run()
        #expect(answer == nil)
        h.loop.advanceTime(by: .milliseconds(300))
        let encoded = try #require(answer)
        let response = try h.decodeResponse(encoded, FetchResponse.self, apiKey: 1, version: 12, correlation: fetchCorrelation)
        #expect(try fetchedRecords(response.responses[0].partitions[0].records).map(\.value) == ["small"])
    }

    // MARK: where Brook differs from Kafka (known issues)

    /// Kafka (ConfigHelper.describeConfigs) lists every config when configuration_keys is null
    /// *or empty*.
    @Test func describeConfigsWithAnEmptyKeyListListsEverything() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let response = try h.send(DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "t", configurationKeys: [])]), version: 4)
        #expect(response.results[0].errorCode == 0)
        #expect(response.results[0].configs.count == TopicConfigs.all.count)
    }

    /// Kafka refuses assignments whose count is not the number of partitions added
    /// (ReplicationControlManager.createPartitions: "Attempted to add 2 additional partition(s),
    /// but only 1 assignment(s) were specified.").
    @Test func createPartitionsChecksTheAssignmentCount() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        try h.createTopic("t")
        let request = CreatePartitionsRequest(topics: [.init(name: "t", count: 3, assignments: [.init(brokerIds: [NodeID(1)])])], validateOnly: true)
        let result = try h.send(request, version: 3).results[0]
        #expect(result.errorCode == ErrorCode.invalidReplicaAssignment.rawValue)
    }

    /// Topics, configs and the cluster id survive a restart.
    @Test func restartKeepsTopicsAndClusterID() throws {
        let h = try BrokerHarness()
        defer { h.close() }
        let created = try h.createTopic("kept", partitions: 2, configs: ["retention.ms": "1234"])
        let now = h.clock.now().ms
        try h.produce("kept", partition: 1, batch(["x"], timestamps: [now]))
        h.broker.shutdown()
        let again = try Broker(config: BrokerConfig([("log.dirs", h.directory), ("node.id", "1")]), clock: h.clock, logger: quietLogger)
        defer { again.shutdown() }
        #expect(again.clusterID == h.broker.clusterID)
        let topic = try #require(again.topics.topic("kept"))
        #expect(topic.id == created.topicId && topic.partitions.count == 2 && topic.overrides == ["retention.ms": "1234"])
        #expect(again.topics.partition("kept", 1)?.offsets.highWatermark == Offset(1))
    }
}
