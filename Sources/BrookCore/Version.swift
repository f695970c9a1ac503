/// Brook's release, as `brook serve` logs it and the client reports it in ApiVersions.
public enum Version {
    public static let brook = "0.3.0"
}
