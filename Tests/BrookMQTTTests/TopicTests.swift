import Testing
@testable import BrookMQTT

/// Topic names and filters, by MQTT 5.0 section 4.7 (3.1.1 section 4.7 is the same) and its
/// examples.
@Suite struct TopicTests {
    func matches(_ filter: String, _ name: String) -> Bool { MQTTTopic.matches(filter: filter, name: name) }

    @Test func multiLevelWildcardMatchesTheParentAndEveryChild() {
        for name in ["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon"] {
            #expect(matches("sport/tennis/player1/#", name), "\(name)")
        }
        #expect(matches("sport/#", "sport"))
        #expect(matches("#", "sport/tennis"))
        #expect(!matches("sport/tennis/player1/#", "sport/tennis/player2"))
        #expect(!matches("sport/tennis/#", "sport"))
    }

    @Test func singleLevelWildcardMatchesExactlyOneLevel() {
        #expect(matches("sport/tennis/+", "sport/tennis/player1"))
        #expect(!matches("sport/tennis/+", "sport/tennis/player1/ranking"))
        #expect(!matches("sport/+", "sport"))
        #expect(matches("sport/+", "sport/"))
        #expect(matches("+/+", "/finance"))
        #expect(matches("/+", "/finance"))
        #expect(!matches("+", "/finance"))
        #expect(matches("+/tennis/#", "sport/tennis"))
    }

    @Test func levelsMatchExactly() {
        #expect(matches("a/b", "a/b"))
        #expect(!matches("a/b", "a/b/"))
        #expect(!matches("a/", "a"))
        #expect(!matches("a/b", "a/bc"))
        #expect(!matches("A/b", "a/b"))
    }

    @Test func dollarTopicsAreNotMatchedByALeadingWildcard() {
        #expect(!matches("#", "$SYS/x"))
        #expect(!matches("+/x", "$SYS/x"))
        #expect(matches("$SYS/#", "$SYS/x"))
        #expect(matches("$SYS/+", "$SYS/x"))
        #expect(matches("a/#", "a/$x"))
    }

    @Test func filterValidity() {
        for valid in ["+", "#", "+/tennis/#", "sport/tennis/player1/#", "/", "a//b", "sport/+/player1", "$SYS/#"] {
            #expect(MQTTTopic.isValidFilter(valid), "\(valid)")
        }
        for invalid in ["", "sport/tennis#", "sport/#/ranking", "sport+", "sport/+tennis", "#/", "##"] {
            #expect(!MQTTTopic.isValidFilter(invalid), "\(invalid)")
        }
    }

    /// A wildcard followed by a combining mark is one Swift `Character` but two code points: the
    /// level is not the wildcard alone.
    @Test func aWildcardWithACombiningMarkIsNotAWholeLevel() {
        #expect(!MQTTTopic.isValidFilter("sport/#\u{301}"))
        #expect(!MQTTTopic.isValidFilter("sport/+\u{301}/x"))
        #expect(MQTTTopic.isValidFilter("sport/\u{301}"))
        #expect(sharedRefusal("$share/g+\u{301}/x") == .topicFilterInvalid)
        #expect(sharedRefusal("$share/g/#\u{301}") == .topicFilterInvalid)
    }

    @Test func aSlashWithACombiningMarkStillEndsALevel() throws {
        #expect(MQTTTopic.isValidFilter("a/\u{301}/#"))
        #expect(!MQTTTopic.isValidFilter("a/\u{301}#"))
        #expect(MQTTTopic.matches(filter: "a/+", name: "a/\u{301}"))
        let shared = try #require(try MQTTTopic.shared("$share/\u{301}g/x"))
        #expect(shared.group == "\u{301}g" && shared.filter == "x")
    }

    @Test func nameValidity() {
        for valid in ["a", "/", "sport/tennis", "$SYS/x", " ", "ünï/cödé"] {
            #expect(MQTTTopic.isValidName(valid), "\(valid)")
        }
        for invalid in ["", "a/+", "#", "a+b"] {
            #expect(!MQTTTopic.isValidName(invalid), "\(invalid)")
        }
        #expect(MQTTTopic.hasWildcard("a/+") && MQTTTopic.hasWildcard("#") && !MQTTTopic.hasWildcard("a/b"))
    }

    @Test func sharedSubscriptionsNameAGroupAndAFilter() throws {
        let shared = try #require(try MQTTTopic.shared("$share/g/a/b"))
        #expect(shared.group == "g" && shared.filter == "a/b")
        let wildcard = try #require(try MQTTTopic.shared("$share/consumers/sensors/+/#"))
        #expect(wildcard.group == "consumers" && wildcard.filter == "sensors/+/#")
        #expect(try MQTTTopic.shared("a/b") == nil)
        #expect(try MQTTTopic.shared("$SYS/share") == nil)
    }

    @Test func malformedSharedSubscriptionsAreInvalidFilters() {
        for invalid in ["$share/g", "$share//x", "$share/g+/x", "$share/g#/x", "$share/g/", "$share/g/a/#/b"] {
            #expect(sharedRefusal(invalid) == .topicFilterInvalid, "\(invalid)")
        }
    }

    func sharedRefusal(_ filter: String) -> ReasonCode? {
        do {
            _ = try MQTTTopic.shared(filter)
            return nil
        } catch {
            return error.reason
        }
    }
}
