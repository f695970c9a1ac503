extension StringProtocol {
    /// Without the spaces and tabs at either end (as properties files and Kafka's tools take values).
    public var trimmed: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
